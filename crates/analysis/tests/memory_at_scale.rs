//! Memory at many agents and processes: the pipeline's live heap stops growing once what it
//! keeps per agent and per process is at its bound, however many more agents and processes
//! come. Measured with a counting allocator (the heap the pipeline really holds, not the
//! budget's estimates), between two points of one run, so what was allocated before (the
//! fixture, lazily built tables) does not count.
//!
//! The workload is a recorded agent session (tests/fixtures) repeated as new agents in new
//! processes (`repeat_as_new_agents`), and a flood of processes whose exits never arrive.

use std::sync::Mutex;

use agentscope_analysis::model::{EdgeKind, HostOnlyIdentity, ModelOptions};
use agentscope_analysis::pipeline::Pipeline;
use agentscope_event::event::{Event, EventBody, Header};
use agentscope_event::event_json::events_from_json_lines;
use agentscope_event::process_table::PROCESSES_KEPT;
use agentscope_event::synthetic::repeat_as_new_agents;
use agentscope_memory_budget::heap_counter::HeapCounter;
use agentscope_reconstruct::ReconstructOptions;

#[global_allocator]
static ALLOCATOR: HeapCounter = HeapCounter;

/// The heap is one counter for the whole binary: its tests take turns.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const MIB: f64 = 1024.0 * 1024.0;

fn pipeline(budget: usize) -> Pipeline {
    Pipeline::new(
        ReconstructOptions {
            memory_budget: budget,
            ..Default::default()
        },
        ModelOptions::default(),
        Box::new(HostOnlyIdentity),
    )
}

/// Ends the recorded session with the exits the recording stopped before: each round's
/// processes then go, and what is kept per process with them (bounded on its own, see the
/// next test), so what remains is what is kept per agent.
fn exit_every_process(events: &mut Vec<Event>) {
    let exited: std::collections::BTreeSet<u32> = events
        .iter()
        .filter(|e| matches!(e.body, EventBody::Exit { .. }))
        .map(|e| e.header.pid)
        .collect();
    let mut last_of: std::collections::BTreeMap<u32, Event> = std::collections::BTreeMap::new();
    for event in events.iter() {
        if !exited.contains(&event.header.pid) {
            last_of.insert(event.header.pid, event.clone());
        }
    }
    let end = events.iter().map(|e| e.header.ts_ns).max().unwrap_or(0);
    for (pid, mut exit) in last_of {
        exit.header.tid = pid;
        exit.header.ts_ns = end + 1;
        exit.body = EventBody::Exit { exit_code: Some(0) };
        events.push(exit);
    }
}

/// 2,400 agents, one a round, each with its LLM calls, tool calls and processes, through a
/// 4 MiB budget: after the first 1,500 every bound is reached, and the next 900 agents must
/// not grow the heap (without a bound, each agent's record, AI-BOM, baseline and detection
/// state stay: about 10 KiB each, 9 MiB here).
#[test]
fn many_agents_do_not_grow_the_heap_past_the_budget() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut fixture = events_from_json_lines(include_str!(concat!(
        env!("AGENTSCOPE_REPO"),
        "/tests/fixtures/capture/python_chat.jsonl"
    )))
    .unwrap();
    exit_every_process(&mut fixture);
    // Past every count bound (1,024 conversation sessions, 4,096 exited processes kept).
    let (warm, rounds) = (1500, 2400);
    let events = repeat_as_new_agents(std::slice::from_ref(&fixture), rounds);
    let per_round = fixture.len();
    let mut pipeline = pipeline(4 << 20);
    let mut after_warm = 0;
    for (index, event) in events.iter().enumerate() {
        pipeline.push(event);
        if index + 1 == warm as usize * per_round {
            after_warm = HeapCounter::live_bytes();
        }
    }
    let at_end = HeapCounter::live_bytes();
    let memory = pipeline.memory_budget().stats();
    let kept = pipeline.model().agent_count() as u64;
    // Every round's agent was discovered: kept, or evicted and counted.
    assert!(
        kept + memory.agents_evicted >= u64::from(rounds),
        "{kept} agents kept, {memory:?}"
    );
    assert!(kept < u64::from(rounds) / 2, "{kept} agents kept");
    let growth = at_end.saturating_sub(after_warm) as f64 / MIB;
    eprintln!(
        "heap {:.1} MiB at agent {warm}, {:.1} MiB at agent {rounds}; {kept} agents kept, \
         {} evicted",
        after_warm as f64 / MIB,
        at_end as f64 / MIB,
        memory.agents_evicted
    );
    assert!(
        growth < 1.0,
        "the heap grew {growth:.1} MiB over the last {} agents ({:.1} MiB at agent {warm}, \
         {kept} agents kept, {memory:?})",
        rounds - warm,
        after_warm as f64 / MIB,
    );
}

/// Under memory pressure, an agent detection raised a finding for is shed after quiet ones:
/// the recorded session repeated as 600 new agents through a 4 MiB budget, the first of
/// them also opening an SSH key before it exits (a sensitive access: a finding, from the real
/// rule). The first agent keeps its record and its graph node while the quiet agents after it
/// were shed, and what it did is still in the graph.
#[test]
fn an_agent_with_a_finding_is_shed_after_quiet_ones() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let fixture = events_from_json_lines(include_str!(concat!(
        env!("AGENTSCOPE_REPO"),
        "/tests/fixtures/capture/python_chat.jsonl"
    )))
    .unwrap();
    let rounds = 600;
    let mut events = repeat_as_new_agents(std::slice::from_ref(&fixture), rounds);
    // The first round's agent (the process that talks to the model) reads a key just before
    // it exits, once it is known as an agent.
    let agent_pid = fixture
        .iter()
        .find(|e| matches!(e.body, EventBody::Data { .. }))
        .map(|e| e.header.pid)
        .expect("the session talks to its model");
    let exit = events[..fixture.len()]
        .iter()
        .position(|e| e.header.pid == agent_pid && matches!(e.body, EventBody::Exit { .. }))
        .expect("the agent exits");
    let mut read_key = events[exit].clone();
    read_key.header.ts_ns -= 1;
    read_key.body = EventBody::Open {
        syscall: "openat",
        path: "/root/.ssh/id_rsa".into(),
        path_truncated: false,
        dfd: -100,
        flags: 0,
        mode: 0,
        ret: 5,
    };
    events.insert(exit, read_key);
    let mut pipeline = pipeline(4 << 20);
    for event in &events {
        pipeline.push(event);
    }
    let flagged = pipeline
        .detector()
        .findings()
        .iter()
        .find(|f| f.summary.contains("/root/.ssh/id_rsa"))
        .map(|f| f.agent.clone())
        .expect("the key read is a finding");
    let memory = pipeline.memory_budget().stats();
    let model = pipeline.model();
    assert!(memory.agents_evicted > 0, "{memory:?}");
    assert!(
        model.agent(&flagged).is_some(),
        "{flagged} was shed ({} agents kept, {memory:?})",
        model.agent_count()
    );
    // The agent of the next round, quiet, was shed before it.
    let next = flagged.replace("-0", "-1");
    assert_ne!(next, flagged);
    assert!(model.agent(&next).is_none(), "{next} is still kept");
    let node = format!("agent:{flagged}");
    assert!(model.graph().get_node(&node).is_some());
    assert!(
        model
            .graph()
            .get_edge(&node, "data:file:/root/.ssh/id_rsa", EdgeKind::Accesses)
            .is_some(),
        "what it did is in the graph"
    );
}

fn fork(parent: u32, child: u32, ts_ns: u64) -> Event {
    Event {
        header: Header {
            ts_ns,
            time_unix_ns: ts_ns,
            pid: parent,
            tid: parent,
            ppid: 0,
            uid: 0,
            gid: 0,
            cgroup_id: 0,
            comm: "spawner".into(),
        },
        body: EventBody::Fork {
            child_pid: child,
            clone_flags: 0,
        },
    }
}

/// Processes whose exits never arrive (lost in a full ring buffer): the process table keeps
/// at most [`PROCESSES_KEPT`], forgets the least recently seen, and counts them; the heap stops
/// growing with it.
#[test]
fn processes_whose_exits_are_lost_do_not_grow_the_heap() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut pipeline = pipeline(64 << 20);
    let offered = 4 * PROCESSES_KEPT as u32;
    let mut at_bound = 0;
    for n in 0..offered {
        pipeline.push(&fork(1, 1000 + n, u64::from(n)));
        assert!(pipeline.processes().len() <= PROCESSES_KEPT);
        if n + 1 == 2 * PROCESSES_KEPT as u32 {
            at_bound = HeapCounter::live_bytes();
        }
    }
    let at_end = HeapCounter::live_bytes();
    let memory = pipeline.memory_budget().stats();
    assert_eq!(
        memory.processes_forgotten + pipeline.processes().len() as u64,
        u64::from(offered) + 1,
        "every process is kept or counted as forgotten"
    );
    assert!(
        pipeline.processes().get(1).is_some(),
        "the parent that keeps forking is recent"
    );
    let growth = at_end.saturating_sub(at_bound) as f64 / MIB;
    assert!(
        growth < 1.0,
        "the heap grew {growth:.1} MiB over the last {} processes",
        2 * PROCESSES_KEPT
    );
}
