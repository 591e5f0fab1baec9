//! The console's state and behaviour between terminal and source: panes, focus, filters and
//! the help overlay; turning keys and mouse events into pane changes and [`Effect`]s;
//! laying the screen out and drawing it.
//!
//! The app never drives the source itself. Input handlers return effects (pause, seek,
//! export a baseline, quit) and the loop in [`super::run_console`] applies them to the source
//! with [`App::apply_effect`]. Derived views (agent tree, graph rows, AI-BOM, detail) are
//! rebuilt when their inputs changed, at most every `refresh_every_ticks` frames, never per
//! frame over everything.
//!
//! Detail shows what was last *opened* (Enter, `e`, `n`/`N`, a `:` jump, a click), never
//! what a selection merely moved to or what focus passed through: moving around the panes
//! (Tab, the number keys) or selecting a finding's agent never replaces what you are reading.
//! Opening keeps the previous subject on the breadcrumb history (Backspace goes back).

use std::collections::HashMap;

use agentscope_analysis::pipeline::Pipeline;
use ratatui::crossterm::event::{
    Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Paragraph};
use ratatui::Frame;

use super::agents_pane::AgentsPane;
use super::aibom::aibom_lines;
use super::baseline::BaselineExporter;
use super::breadcrumbs::{crumb_spans, SubjectHistory};
use super::command_line::{self, Command};
use super::detail::{agent_detail, finding_detail, graph_detail, observation_detail};
use super::findings::{DetectionSync, FindingView, FindingsPane};
use super::format::{format_bytes, format_count, format_position, format_time};
use super::graph_pane::{GraphPane, RowContent};
use super::key_hints::{first_key, hint_line, Editing};
use super::keys::{Action, KeyMap};
use super::log::{LogLimits, ObservationLogs};
use super::pane_switcher::{spans_width, switcher_spans, PANE_ORDER};
use super::posture_lines::posture_lines;
use super::source::{RecordingState, Source, SourceMode, SourceStatus, SourceUpdate, SpeedChange};
use super::text::{fit_columns, visible, ScrollText};
use super::theme::Styles;

/// What an input asks of the world outside the app.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Quit,
    Pause,
    Resume,
    Speed(SpeedChange),
    Step,
    /// Move the replay by this much event time.
    Seek {
        delta_ns: i64,
    },
    ToggleRecording,
    ExportBaseline {
        agent_key: String,
        /// Entries left out (`x` on an attacked agent: its incidents' evidence).
        exclude: Option<agentscope_analysis::baseline::Exclusion>,
    },
    /// `P`: prepare the promotion of this agent's baseline and ask.
    PlanPromotion {
        agent_key: String,
    },
    /// `y` answering `P`: write the promotion asked about.
    Promote(Box<crate::promotion::PromotionPlan>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaneId {
    Agents,
    Graph,
    Timeline,
    Detail,
    AiBom,
    Findings,
    /// What the agent may do against what it did (docs/posture.md).
    Posture,
}

/// Tab order, which is also the panes' numbers.
const PANES: [PaneId; 7] = PANE_ORDER;

/// A pane of scrolled text (AI-BOM, posture) in `block`, or `empty_hint` while it has none.
fn render_scroll_text(
    frame: &mut Frame,
    area: Rect,
    block: Block<'static>,
    text: &mut ScrollText,
    empty_hint: &'static str,
    muted: ratatui::style::Style,
) {
    let inner = Block::bordered().inner(area);
    text.last_area = inner;
    frame.render_widget(block, area);
    if text.is_empty() {
        frame.render_widget(
            Paragraph::new(Line::styled(empty_hint, muted))
                .wrap(ratatui::widgets::Wrap { trim: true }),
            inner,
        );
    } else {
        text.render(frame, inner);
    }
}

/// Where the replay is, as `width` cells: played `━`, to come `─`, the playhead `●`, and a
/// finding's moment `!` (so `}` has somewhere visible to go).
fn position_bar<'a>(
    replay: &crate::source::ReplayStatus,
    finding_times: impl Iterator<Item = &'a u64>,
    width: usize,
) -> String {
    let cell_of = |offset_ns: u64| -> usize {
        if replay.duration_ns == 0 {
            return width - 1;
        }
        ((u128::from(offset_ns.min(replay.duration_ns)) * (width as u128 - 1))
            / u128::from(replay.duration_ns)) as usize
    };
    let head = cell_of(replay.position_ns);
    let mut cells: Vec<char> = (0..width)
        .map(|i| if i < head { '━' } else { '─' })
        .collect();
    for time in finding_times {
        if let Some(offset) = time.checked_sub(replay.start_ts_ns) {
            cells[cell_of(offset)] = '!';
        }
    }
    cells[head] = '●';
    cells.into_iter().collect()
}

/// A line of the help overlay: one action, two that read as a pair (`n N`), or the six
/// pane-number keys.
enum HelpEntry {
    One(Action),
    Pair(Action, Action, &'static str),
    Panes,
}

/// The key action that focuses `pane`.
fn pane_action(pane: PaneId) -> Action {
    match pane {
        PaneId::Agents => Action::PaneAgents,
        PaneId::Graph => Action::PaneGraph,
        PaneId::Timeline => Action::PaneTimeline,
        PaneId::Detail => Action::PaneDetail,
        PaneId::AiBom => Action::PaneAiBom,
        PaneId::Findings => Action::PaneFindings,
        PaneId::Posture => Action::PanePosture,
    }
}

/// The finding whose evidence Enter and `e` walk through the timeline.
#[derive(Debug, Clone)]
struct EvidenceWalk {
    finding: FindingView,
    /// Which evidence row the next step selects.
    next: usize,
    /// A step waits for the frame that has the finding's agent's log.
    pending: bool,
}

/// How long a status message stays, in seconds (an error twice as long).
const MESSAGE_SECONDS: u64 = 5;

/// Below this width the screen has two columns and shows one of graph, timeline and AI-BOM.
pub const WIDE: u16 = 100;

#[derive(Debug, Clone)]
pub struct AppOptions {
    pub keymap: KeyMap,
    pub styles: Styles,
    /// How far `<` and `>` seek; `None`: a twentieth of the capture (at least 100 ms), so a
    /// 4-second capture and a 4-hour one both take twenty steps end to end.
    pub seek_ns: Option<u64>,
    /// How long a new edge stays highlighted (event time).
    pub new_edge_ns: u64,
    /// Derived views are rebuilt at most once per this many frames.
    pub refresh_every_ticks: u64,
    /// Stretch the refresh interval when refreshing is slow (a huge graph), so that it takes
    /// about a tenth of the frames' time at most. Off in tests: it reads the clock.
    pub adaptive_refresh: bool,
    pub log_limits: LogLimits,
    /// The agents shown (`--namespace`, `--pod`, `--agent`): the agents tree and the
    /// findings list only these.
    pub selector: agentscope_analysis::model::agent_selector::AgentSelector,
    /// Where `P` looks for the agent's baseline (`--baseline DIR`, then the config's
    /// `baseline_dir`).
    pub baseline_dirs: Vec<std::path::PathBuf>,
}

/// What the detail pane shows.
#[derive(Debug, Clone, PartialEq)]
enum Subject {
    None,
    Agent(String),
    Observation {
        agent: String,
        position: u64,
    },
    /// A graph row of this agent's graph.
    Graph(Option<String>, RowContent),
    Finding(FindingView),
}

pub struct App {
    options: AppOptions,
    focus: PaneId,
    history: Vec<PaneId>,
    /// Of graph, timeline, AI-BOM and posture, the one shown in the narrow layout.
    content_pane: PaneId,
    /// Of AI-BOM and posture, the one shown under Detail in the wide layout.
    inventory_pane: PaneId,
    zoom: bool,
    help: bool,
    filter_edit: Option<(PaneId, String)>,
    /// The `:` command being typed.
    command_edit: Option<String>,
    /// What Detail showed before, for the back key.
    back_history: SubjectHistory<Subject>,
    /// Where Detail is: `agent › finding › event`.
    trail: Vec<String>,
    /// Every agent's key and display name, for `:agent`.
    agent_names: Vec<(String, String)>,
    /// A timeline row to select once its agent is the current one (going back to another
    /// agent's event: the timeline shows that agent's log from the next frame).
    pending_row: Option<(String, u64)>,
    agents: AgentsPane,
    graph: GraphPane,
    timeline: crate::timeline_pane::TimelinePane,
    detail: ScrollText,
    detail_title: String,
    aibom: ScrollText,
    posture: ScrollText,
    /// What each agent was seen doing, for the posture pane.
    usage: agentscope_analysis::posture::UsageBook,
    findings: FindingsPane,
    detections: DetectionSync,
    logs: ObservationLogs,
    status: SourceStatus,
    message: Option<(String, bool)>,
    /// Where the replay's playhead was (event time) when each finding first appeared, by id,
    /// kept across seeks (a seek back rebuilds the findings pane from the start): where `{`,
    /// `}` and the position bar go. The playhead, not the finding's own time: an incident
    /// opens at its first evidence but is raised when that observation completes, so only the
    /// playhead at which it appeared is sure to show it again.
    finding_times: HashMap<String, u64>,
    /// The finding whose evidence Enter and `e` walk, and the next step of the walk.
    evidence_walk: Option<EvidenceWalk>,
    /// What Detail highlights in an observation: the walked finding's matched text.
    highlight: Vec<String>,
    /// The agent whose baseline export waits for a second `b` (it has findings).
    baseline_confirm: Option<String>,
    /// The promotion `P` asked about, waiting for `y` or `n`.
    promotion_confirm: Option<crate::promotion::PromotionPlan>,
    /// Detail lists the environments handed to the lineage's processes (`v`), masked.
    expand_environment: bool,
    /// Frames the message has been shown; it goes after [`MESSAGE_SECONDS`].
    message_ticks: u64,
    /// Latest event time seen: "now" for the new-edge highlight.
    now_ns: u64,
    /// Unix time minus boot time, learned from observations, to show wall-clock times.
    boot_offset: Option<i128>,
    current_agent: Option<String>,
    /// Display name of the current agent, for pane titles.
    current_name: String,
    subject: Subject,
    subject_dirty: bool,
    model_dirty: bool,
    ticks_since_refresh: u64,
    /// Frames to wait between refreshes now (≥ `refresh_every_ticks`).
    refresh_interval: u64,
    areas: HashMap<PaneId, Rect>,
}

// Accessors used by the tests, the benchmark and the sources that drive the app from outside.
#[allow(dead_code)]
impl App {
    pub fn new(options: AppOptions) -> Self {
        let logs = ObservationLogs::new(options.log_limits);
        Self {
            options,
            focus: PaneId::Agents,
            history: Vec::new(),
            content_pane: PaneId::Graph,
            inventory_pane: PaneId::AiBom,
            zoom: false,
            help: false,
            filter_edit: None,
            command_edit: None,
            back_history: SubjectHistory::default(),
            trail: Vec::new(),
            agent_names: Vec::new(),
            pending_row: None,
            agents: AgentsPane::default(),
            graph: GraphPane::default(),
            timeline: Default::default(),
            detail: ScrollText::default(),
            detail_title: String::new(),
            aibom: ScrollText::default(),
            posture: ScrollText::default(),
            usage: Default::default(),
            findings: FindingsPane::default(),
            detections: DetectionSync::default(),
            logs,
            status: SourceStatus::default(),
            message: None,
            message_ticks: 0,
            baseline_confirm: None,
            promotion_confirm: None,
            expand_environment: false,
            evidence_walk: None,
            highlight: Vec::new(),
            finding_times: Default::default(),
            now_ns: 0,
            boot_offset: None,
            current_agent: None,
            current_name: String::new(),
            subject: Subject::None,
            subject_dirty: false,
            model_dirty: true,
            ticks_since_refresh: u64::MAX / 2,
            refresh_interval: 1,
            areas: HashMap::new(),
        }
    }

    /// Focus, selection and state, as tests and the benchmark inspect them.
    pub fn focus(&self) -> PaneId {
        self.focus
    }

    pub fn current_agent(&self) -> Option<&str> {
        self.current_agent.as_deref()
    }

    pub fn help_open(&self) -> bool {
        self.help
    }

    pub fn message(&self) -> Option<&str> {
        self.message.as_ref().map(|(m, _)| m.as_str())
    }

    pub fn logs(&self) -> &ObservationLogs {
        &self.logs
    }

    pub fn graph(&self) -> &GraphPane {
        &self.graph
    }

    pub fn timeline(&self) -> &crate::timeline_pane::TimelinePane {
        &self.timeline
    }

    pub fn detail(&self) -> &ScrollText {
        &self.detail
    }

    pub fn findings(&self) -> &FindingsPane {
        &self.findings
    }

    /// An event time as the panes print it.
    pub fn event_time(&self, ts_ns: u64) -> String {
        format_time(ts_ns, self.boot_offset)
    }

    /// Where Detail is, as the breadcrumb line shows it.
    pub fn trail(&self) -> &[String] {
        &self.trail
    }

    /// What each agent was seen doing (the posture pane reads it).
    pub fn posture_usage(&self) -> &agentscope_analysis::posture::UsageBook {
        &self.usage
    }

    /// Unix time minus boot time, as learned from observations (wall-clock times shown).
    pub fn boot_offset(&self) -> Option<i128> {
        self.boot_offset
    }

    pub fn set_message(&mut self, text: impl Into<String>, error: bool) {
        self.message = Some((text.into(), error));
        self.message_ticks = 0;
    }
}

impl App {
    /// Takes one poll's worth of news from the source.
    pub fn ingest(&mut self, update: SourceUpdate, pipeline: &Pipeline) {
        if update.reset {
            self.logs.clear();
            self.findings.clear();
            self.detections.clear();
            self.graph.novelty.clear();
            self.usage = Default::default();
            self.now_ns = 0;
            self.model_dirty = true;
        }
        if !update.observations.is_empty() {
            for sourced in &update.observations {
                self.usage.observe(sourced);
                let observation = &sourced.observation;
                self.now_ns = self.now_ns.max(observation.ts_ns);
                if self.boot_offset.is_none() && observation.time_unix_ns != 0 {
                    self.boot_offset =
                        Some(i128::from(observation.time_unix_ns) - i128::from(observation.ts_ns));
                }
            }
            self.logs.ingest(update.observations);
            self.model_dirty = true;
            // A start from a keyframe (a console that attached, a seek, a rotated recording's
            // later file) saw no `cluster_objects` event: the keyframe's snapshot is the
            // declared side until a newer one comes.
            self.usage.or_pipeline_cluster(pipeline);
            let before = self.findings.len();
            self.detections
                .sync(pipeline.detector(), &mut self.findings);
            let selector = &self.options.selector;
            if !selector.is_all() {
                let model = pipeline.model();
                self.findings.retain(|f| {
                    model
                        .agent(&f.agent_key)
                        .is_some_and(|a| selector.matches(a))
                });
            }
            if self.findings.len() != before {
                self.model_dirty = true;
            }
        }
        for finding in update.findings {
            self.findings.push(finding);
            self.model_dirty = true;
        }
        // Live or replay decides what the graph marks (see `EdgeNovelty`).
        if std::mem::discriminant(&self.status.mode) != std::mem::discriminant(&update.status.mode)
        {
            self.model_dirty = true;
        }
        self.status = update.status;
        if let SourceMode::Replay(replay) = &self.status.mode {
            let playhead = replay.start_ts_ns.saturating_add(replay.position_ns);
            for id in self.findings.ids() {
                if !self.finding_times.contains_key(id) {
                    self.finding_times.insert(id.to_string(), playhead);
                }
            }
        }
        if let Some(message) = update.message {
            self.set_message(message, false);
        }
    }

    /// Adds a finding directly (what a detection module would send through the source).
    #[allow(dead_code)]
    pub fn add_finding(&mut self, finding: FindingView) {
        self.findings.push(finding);
        self.model_dirty = true;
    }

    /// Brings derived views up to date. Cheap when nothing changed.
    pub fn prepare(&mut self, pipeline: &Pipeline) {
        self.ticks_since_refresh = self.ticks_since_refresh.saturating_add(1);
        // refresh_every_ticks is a quarter second of frames; errors stay twice as long.
        self.message_ticks = self.message_ticks.saturating_add(1);
        if let Some((_, error)) = &self.message {
            let seconds = MESSAGE_SECONDS * if *error { 2 } else { 1 };
            if self.message_ticks > seconds * 4 * self.options.refresh_every_ticks {
                self.message = None;
            }
        }
        let interval = self.refresh_interval.max(self.options.refresh_every_ticks);
        let refresh = self.model_dirty && self.ticks_since_refresh >= interval;
        let started = (refresh && self.options.adaptive_refresh).then(std::time::Instant::now);
        if refresh {
            self.model_dirty = false;
            self.ticks_since_refresh = 0;
            let model = pipeline.model();
            self.agent_names = model
                .agents()
                .map(|a| (a.key.clone(), a.name.clone()))
                .collect();
            let selector = &self.options.selector;
            self.agents.rebuild(
                model.agents().filter(|a| selector.matches(a)),
                &self.logs,
                &self.findings,
                &self.options.styles,
            );
        }
        let selected = self.agents.selected_agent().map(str::to_string);
        let agent_changed = selected.is_some() && selected != self.current_agent;
        if agent_changed {
            self.graph.novelty.clear();
        }
        if refresh || agent_changed {
            let live = self.status.mode == SourceMode::Live;
            self.graph.novelty.update(
                pipeline.detector(),
                selected.as_deref().or(self.current_agent.as_deref()),
                self.now_ns,
                live,
            );
        }
        if agent_changed {
            self.current_agent = selected;
            self.graph
                .set_agent(self.current_agent.as_deref(), pipeline.model().graph());
            self.timeline.set_agent(self.current_agent.as_deref());
            // The first agent seen is shown until something is opened; after that a change of
            // agent (n on another agent's finding, a walk) leaves Detail alone.
            if self.subject == Subject::None {
                self.subject = self
                    .current_agent
                    .clone()
                    .map_or(Subject::None, Subject::Agent);
                self.subject_dirty = true;
            }
        } else if refresh {
            self.graph.rebuild(pipeline.model().graph());
        }
        if let Some(started) = started {
            // At ~30 fps a frame is ~33 ms; a refresh costing N ms then waits N/3 frames.
            let cost_ms = started.elapsed().as_millis() as u64;
            self.refresh_interval = (cost_ms / 3).clamp(1, 300);
        }
        let log = self
            .current_agent
            .as_deref()
            .and_then(|k| self.logs.agent(k));
        self.timeline.sync(log);
        // The agent was selected with the row; it is the current one by now (or gone).
        if let Some((agent, position)) = self.pending_row.take() {
            if self.current_agent.as_deref() == Some(agent.as_str()) {
                self.timeline.select_position(position, log);
            }
        }
        self.step_evidence();
        if refresh || agent_changed {
            let agent = self
                .current_agent
                .as_deref()
                .and_then(|key| pipeline.model().agents().find(|a| a.key == key));
            self.current_name = agent.map(|a| a.name.clone()).unwrap_or_default();
            let lines = agent
                .map(|agent| aibom_lines(agent, &self.options.styles))
                .unwrap_or_default();
            self.aibom.set(lines, !agent_changed);
            let lines = agent
                .map(|agent| {
                    posture_lines(
                        agent,
                        self.usage.agent(&agent.key),
                        self.usage.cluster.as_ref(),
                        &self.options.styles,
                    )
                })
                .unwrap_or_default();
            self.posture.set(lines, !agent_changed);
        }
        if self.subject_dirty || (refresh && self.subject_is_live()) {
            let keep_scroll = !self.subject_dirty;
            self.subject_dirty = false;
            self.build_detail(pipeline, keep_scroll);
        }
    }

    /// Agents and graph edges change as events arrive; an observation or finding does not.
    fn subject_is_live(&self) -> bool {
        matches!(self.subject, Subject::Agent(_) | Subject::Graph(..))
    }

    fn build_detail(&mut self, pipeline: &Pipeline, keep_scroll: bool) {
        let styles = &self.options.styles;
        // The first highlighted line, scrolled into view on a new subject.
        let mut first_mark = None;
        let offset = self.boot_offset;
        let name_of = |key: &str| {
            pipeline
                .model()
                .agents()
                .find(|a| a.key == key)
                .map_or_else(|| key.to_string(), |a| a.name.clone())
        };
        self.trail = match &self.subject {
            Subject::None => Vec::new(),
            Subject::Agent(key) => vec![name_of(key)],
            Subject::Finding(finding) => vec![name_of(&finding.agent_key), finding.id.clone()],
            Subject::Observation { agent, position } => {
                let mut trail = vec![name_of(agent)];
                let entry = self.logs.agent(agent).and_then(|l| l.get(*position));
                if let (Some(walk), Some(entry)) = (&self.evidence_walk, entry) {
                    if walk.finding.agent_key == *agent
                        && crate::timeline_pane::overlaps(
                            &walk.finding.evidence,
                            &entry.observation.events,
                        )
                    {
                        trail.push(walk.finding.id.clone());
                    }
                }
                if let Some(entry) = entry {
                    trail.push(format!(
                        "{} {}",
                        entry.kind.tag().to_lowercase(),
                        format_time(entry.observation.ts_ns, offset)
                    ));
                }
                trail
            }
            Subject::Graph(agent, row) => {
                let mut trail: Vec<String> = agent.as_deref().map(name_of).into_iter().collect();
                trail.push(match row {
                    RowContent::Group { name, .. } => name.to_string(),
                    RowContent::Edge(edge) => edge.label.clone(),
                });
                trail
            }
        };
        let (title, lines) = match &self.subject {
            Subject::None => (String::new(), Vec::new()),
            Subject::Agent(key) => match pipeline.model().agents().find(|a| &a.key == key) {
                Some(agent) => {
                    let activity = self.logs.agent(key).map(|l| (l.total, l.len()));
                    (
                        agent.name.clone(),
                        agent_detail(
                            agent,
                            activity,
                            pipeline,
                            styles,
                            offset,
                            self.expand_environment,
                        ),
                    )
                }
                None => (String::new(), Vec::new()),
            },
            Subject::Observation { agent, position } => {
                match self.logs.agent(agent).and_then(|l| l.get(*position)) {
                    Some(entry) => {
                        let model_agent = pipeline.model().agents().find(|a| &a.key == agent);
                        let mut lines = observation_detail(
                            entry,
                            model_agent,
                            pipeline,
                            styles,
                            offset,
                            self.expand_environment,
                        );
                        // The walked finding's matched text, and what the timeline search
                        // looked for.
                        let mut terms: Vec<String> = self.highlight.clone();
                        terms.extend(
                            self.timeline
                                .highlight_terms()
                                .into_iter()
                                .map(str::to_string),
                        );
                        if !terms.is_empty() {
                            let (marked, first) =
                                crate::text::highlight(lines, &terms, styles.selection);
                            lines = marked;
                            first_mark = first;
                        }
                        (entry.kind.tag().to_lowercase(), lines)
                    }
                    None => (String::new(), Vec::new()),
                }
            }
            Subject::Graph(_, row) => {
                let title = match row {
                    RowContent::Group { name, .. } => name.to_string(),
                    RowContent::Edge(edge) => edge.label.clone(),
                };
                (title, graph_detail(row, pipeline, styles, offset))
            }
            Subject::Finding(finding) => (
                "finding".to_string(),
                finding_detail(finding, styles, offset),
            ),
        };
        self.detail_title = title;
        self.detail.set(lines, keep_scroll);
        if let (Some(line), false) = (first_mark, keep_scroll) {
            self.detail.scroll_to_line(line);
        }
    }

    /// What the focused pane has selected, as Detail would show it.
    fn selected_subject(&self) -> Option<Subject> {
        Some(match self.focus {
            PaneId::Agents => Subject::Agent(self.agents.selected_agent()?.to_string()),
            PaneId::Graph => Subject::Graph(
                self.current_agent.clone(),
                self.graph.selected()?.content.clone(),
            ),
            PaneId::Timeline => {
                let agent = self.current_agent.clone()?;
                let position = self.timeline.selected_position(self.logs.agent(&agent))?;
                Subject::Observation { agent, position }
            }
            PaneId::Findings => Subject::Finding(self.findings.selected()?.clone()),
            PaneId::Detail | PaneId::AiBom | PaneId::Posture => return None,
        })
    }

    /// Opens the focused pane's selection in Detail.
    fn open_selected(&mut self) {
        if let Some(subject) = self.selected_subject() {
            self.open(subject);
        }
    }

    /// Shows `subject` in Detail, keeping what it showed on the back history.
    fn open(&mut self, subject: Subject) {
        if subject == self.subject {
            return;
        }
        let previous = std::mem::replace(&mut self.subject, subject);
        if previous != Subject::None {
            self.back_history.push(previous);
        }
        self.subject_dirty = true;
    }

    /// The back key: Detail shows what it showed before, and its agent (and finding) are
    /// selected again.
    fn open_previous(&mut self) {
        let Some(subject) = self.back_history.pop() else {
            self.set_message("nothing to go back to", false);
            return;
        };
        match &subject {
            Subject::None => {}
            Subject::Agent(key) => {
                self.agents.select_agent(key);
            }
            Subject::Finding(finding) => {
                self.agents.select_agent(&finding.agent_key);
                self.findings.select_id(&finding.id);
            }
            Subject::Observation { agent, position } => {
                self.agents.select_agent(agent);
                if self.current_agent.as_deref() == Some(agent.as_str()) {
                    let log = self.logs.agent(agent);
                    self.timeline.select_position(*position, log);
                } else {
                    self.pending_row = Some((agent.clone(), *position));
                }
            }
            Subject::Graph(agent, _) => {
                if let Some(agent) = agent {
                    self.agents.select_agent(agent);
                }
            }
        }
        self.subject = subject;
        self.subject_dirty = true;
    }

    fn set_focus(&mut self, pane: PaneId) {
        if pane != self.focus {
            self.history.push(self.focus);
            if self.history.len() > 32 {
                self.history.remove(0);
            }
            self.focus = pane;
        }
        if matches!(
            pane,
            PaneId::Graph | PaneId::Timeline | PaneId::AiBom | PaneId::Posture
        ) {
            self.content_pane = pane;
        }
        if matches!(pane, PaneId::AiBom | PaneId::Posture) {
            self.inventory_pane = pane;
        }
    }

    fn cycle_focus(&mut self, forward: bool) {
        let index = PANES.iter().position(|p| *p == self.focus).unwrap_or(0);
        let next = if forward {
            (index + 1) % PANES.len()
        } else {
            (index + PANES.len() - 1) % PANES.len()
        };
        self.set_focus(PANES[next]);
    }

    /// Handles one terminal event; returns what the source or the loop must do.
    pub fn handle_event(&mut self, event: &Event) -> Vec<Effect> {
        match event {
            Event::Key(key) if key.kind != KeyEventKind::Release => self.handle_key(key),
            Event::Mouse(mouse) => {
                self.handle_mouse(mouse);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn handle_key(&mut self, key: &KeyEvent) -> Vec<Effect> {
        if let Some(mut text) = self.command_edit.take() {
            match key.code {
                KeyCode::Enter => return self.run_command(&text),
                KeyCode::Esc => {}
                // Backspace on an empty line leaves command mode, as in vim.
                KeyCode::Backspace => {
                    if text.pop().is_some() {
                        self.command_edit = Some(text);
                    }
                }
                KeyCode::Char(c)
                    if !key
                        .modifiers
                        .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) =>
                {
                    // A command is a word and an argument: a paste of a megabyte is cut.
                    if text.len() < 256 {
                        text.push(c);
                    }
                    self.command_edit = Some(text);
                }
                _ => self.command_edit = Some(text),
            }
            return Vec::new();
        }
        if let Some((pane, mut text)) = self.filter_edit.take() {
            match key.code {
                KeyCode::Enter => {}
                KeyCode::Esc => {
                    self.apply_filter(pane, String::new());
                }
                KeyCode::Backspace => {
                    text.pop();
                    self.apply_filter(pane, text.clone());
                    self.filter_edit = Some((pane, text));
                }
                KeyCode::Char(c)
                    if !key
                        .modifiers
                        .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) =>
                {
                    text.push(c);
                    self.apply_filter(pane, text.clone());
                    self.filter_edit = Some((pane, text));
                }
                _ => self.filter_edit = Some((pane, text)),
            }
            return Vec::new();
        }
        if let Some(plan) = self.promotion_confirm.take() {
            // The question takes the next key: `y` writes, anything else cancels.
            return match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') => vec![Effect::Promote(Box::new(plan))],
                _ => {
                    self.set_message("promotion cancelled: nothing written", false);
                    Vec::new()
                }
            };
        }
        let Some(action) = self.options.keymap.action(key) else {
            return Vec::new();
        };
        if self.help {
            if matches!(action, Action::Help | Action::Back | Action::Quit) {
                self.help = false;
            }
            return Vec::new();
        }
        self.handle_action(action)
    }

    fn handle_action(&mut self, action: Action) -> Vec<Effect> {
        let page = |area: Rect| (area.height.max(2) - 1) as isize;
        match action {
            Action::Quit => return vec![Effect::Quit],
            Action::Help => self.help = true,
            Action::NextPane => self.cycle_focus(true),
            Action::PrevPane => self.cycle_focus(false),
            Action::Zoom => self.zoom = !self.zoom,
            Action::Filter => {
                if let Some(current) = self.filter_of(self.focus) {
                    self.filter_edit = Some((self.focus, current.to_string()));
                } else {
                    self.set_message("this pane has no filter", true);
                }
            }
            Action::Pause => {
                let paused = match &self.status.mode {
                    SourceMode::Replay(replay) => replay.paused,
                    SourceMode::Live => false,
                };
                return vec![if paused {
                    Effect::Resume
                } else {
                    Effect::Pause
                }];
            }
            Action::Slower => return vec![Effect::Speed(SpeedChange::Slower)],
            Action::Faster => return vec![Effect::Speed(SpeedChange::Faster)],
            Action::Step => return vec![Effect::Step],
            Action::SeekBack => {
                return vec![Effect::Seek {
                    delta_ns: -(self.seek_step_ns().min(i64::MAX as u64) as i64),
                }]
            }
            Action::SeekForward => {
                return vec![Effect::Seek {
                    delta_ns: self.seek_step_ns().min(i64::MAX as u64) as i64,
                }]
            }
            Action::SeekPrevFinding | Action::SeekNextFinding => {
                return self.seek_to_finding(action == Action::SeekNextFinding);
            }
            Action::Record => return vec![Effect::ToggleRecording],
            Action::Baseline => match self.current_agent.clone() {
                Some(key) => return self.export_baseline(key),
                None => self.set_message("select an agent first", true),
            },
            Action::NextEvidence => {
                let selected = self.findings.selected().cloned();
                match (self.evidence_walk.as_mut(), selected) {
                    // The same finding: on to its next evidence row.
                    (Some(walk), Some(finding)) if walk.finding.id == finding.id => {
                        walk.pending = true
                    }
                    (Some(walk), None) => walk.pending = true,
                    // Another finding was selected since (n, N): walk that one.
                    (_, Some(finding)) => self.walk_evidence(finding),
                    (None, None) => self.set_message("select a finding first (n)", true),
                }
            }
            Action::ExcludeEvidence => return self.export_baseline_without_evidence(),
            Action::Promote => return self.promote(),
            Action::GroupBySession => {
                let log = self
                    .current_agent
                    .as_deref()
                    .and_then(|k| self.logs.agent(k));
                self.timeline.toggle_group_by_session(log);
                self.set_message(
                    if self.timeline.grouped_by_session() {
                        "timeline grouped by session (S: back to time order)"
                    } else {
                        "timeline in time order"
                    },
                    false,
                );
            }
            Action::ShowEnvironment => {
                self.expand_environment = !self.expand_environment;
                self.subject_dirty = true;
            }
            Action::NextFinding => self.next_finding(true),
            Action::PrevFinding => self.next_finding(false),
            Action::PaneAgents => self.set_focus(PaneId::Agents),
            Action::PaneGraph => self.set_focus(PaneId::Graph),
            Action::PaneTimeline => self.set_focus(PaneId::Timeline),
            Action::PaneDetail => self.set_focus(PaneId::Detail),
            Action::PaneAiBom => self.set_focus(PaneId::AiBom),
            Action::PanePosture => self.set_focus(PaneId::Posture),
            Action::PaneFindings => self.set_focus(PaneId::Findings),
            Action::PreviousSubject => self.open_previous(),
            Action::Command => self.command_edit = Some(String::new()),
            Action::Sort => self.sort_focused(),
            Action::Back => self.back(),
            Action::DrillIn => self.drill_in(),
            Action::Up => self.navigate(-1),
            Action::Down => self.navigate(1),
            Action::PageUp => {
                let rows = page(self.pane_inner(self.focus));
                self.navigate(-rows);
            }
            Action::PageDown => {
                let rows = page(self.pane_inner(self.focus));
                self.navigate(rows);
            }
            Action::Top => self.navigate(isize::MIN / 2),
            Action::Bottom => self.navigate(isize::MAX / 2),
            Action::Left => match self.focus {
                PaneId::Agents => {
                    self.agents.state.key_left();
                }
                PaneId::Graph => self.graph.collapse_or_parent(),
                _ => {}
            },
            Action::Right => match self.focus {
                PaneId::Agents => {
                    self.agents.state.key_right();
                }
                PaneId::Graph => self.graph.expand_or_child(),
                _ => {}
            },
        }
        Vec::new()
    }

    fn pane_inner(&self, pane: PaneId) -> Rect {
        self.areas
            .get(&pane)
            .map(|r| Block::bordered().inner(*r))
            .unwrap_or_default()
    }

    fn navigate(&mut self, delta: isize) {
        match self.focus {
            PaneId::Agents => {
                if delta == isize::MIN / 2 {
                    self.agents.state.select_first();
                } else if delta == isize::MAX / 2 {
                    self.agents.state.select_last();
                } else {
                    self.agents.state.select_relative(|current| {
                        current.map_or(0, |c| c.saturating_add_signed(delta))
                    });
                }
            }
            PaneId::Graph => self.graph.move_by(delta),
            PaneId::Timeline => {
                let log = self
                    .current_agent
                    .as_deref()
                    .and_then(|k| self.logs.agent(k));
                self.timeline.move_by(delta, log);
            }
            PaneId::Findings => {
                let len = self.findings.len();
                self.findings.cursor.move_by(delta, len);
            }
            PaneId::Detail => self.scroll_text(PaneId::Detail, delta),
            PaneId::AiBom | PaneId::Posture => self.scroll_text(self.focus, delta),
        }
    }

    fn scroll_text(&mut self, pane: PaneId, delta: isize) {
        let text = if pane == PaneId::Detail {
            &mut self.detail
        } else if pane == PaneId::Posture {
            &mut self.posture
        } else {
            &mut self.aibom
        };
        if delta == isize::MAX / 2 {
            text.scroll_to_end();
        } else {
            text.scroll_by(delta);
        }
    }

    /// Enter: opens the selection in Detail. An agent also leads on to its graph and a
    /// finding to its evidence; a graph group opens or closes. Focus stays in lists
    /// otherwise, so `j` Enter reads the next row.
    fn drill_in(&mut self) {
        match self.focus {
            PaneId::Agents => {
                if self.agents.selected_agent().is_some() {
                    self.open_selected();
                    self.set_focus(PaneId::Graph);
                } else {
                    self.agents.state.toggle_selected();
                }
            }
            // A group opens or closes (its detail is a count); a node opens in Detail, and
            // Right and Left unfold and fold it.
            PaneId::Graph => {
                if self
                    .graph
                    .selected()
                    .is_some_and(|r| matches!(r.content, RowContent::Group { .. }))
                {
                    self.graph.toggle();
                }
                self.open_selected();
            }
            // A finding: to its evidence in the timeline.
            PaneId::Findings => {
                if let Some(finding) = self.findings.selected().cloned() {
                    self.walk_evidence(finding);
                }
            }
            PaneId::Detail => {
                if let Subject::Finding(finding) = &self.subject {
                    let finding = finding.clone();
                    self.walk_evidence(finding);
                }
            }
            PaneId::Timeline => self.open_selected(),
            PaneId::AiBom | PaneId::Posture => {}
        }
    }

    /// `s`: the focused list's next sort order.
    fn sort_focused(&mut self) {
        match self.focus {
            PaneId::Findings => {
                let order = self.findings.order.next();
                self.findings.set_order(order);
                self.set_message(format!("findings by {}", order.name()), false);
            }
            PaneId::Graph => {
                let order = self.graph.order.next();
                self.graph.set_order(order);
                self.set_message(format!("graph rows by {}", order.name()), false);
            }
            PaneId::Timeline => self.set_message("the timeline is in event order", false),
            _ => self.set_message("s sorts the graph and the findings", false),
        }
    }

    /// Runs a `:` command (see [`command_line`]).
    fn run_command(&mut self, text: &str) -> Vec<Effect> {
        let command = match command_line::parse(text) {
            Ok(command) => command,
            Err(error) => {
                self.set_message(error, true);
                return Vec::new();
            }
        };
        match command {
            Command::Agent(query) => match self.find_agent(&query) {
                Ok(key) => {
                    self.agents.select_agent(&key);
                    self.open(Subject::Agent(key));
                    self.set_focus(PaneId::Agents);
                }
                Err(error) => self.set_message(error, true),
            },
            Command::Finding(id) => {
                let found = self
                    .findings
                    .all()
                    .find(|f| command_line::same_id(&id, &f.id))
                    .cloned();
                let Some(finding) = found else {
                    self.set_message(format!("no finding {id}"), true);
                    return Vec::new();
                };
                if self.findings.select_id(&finding.id).is_none() {
                    // Hidden by the pane's filter: the jump clears it.
                    self.findings.set_filter(String::new());
                    self.findings.select_id(&finding.id);
                }
                self.agents.select_agent(&finding.agent_key);
                self.open(Subject::Finding(finding));
                self.set_focus(PaneId::Findings);
            }
            Command::ClockTime(clock_ns) => {
                let reference = self.playhead_ns().unwrap_or(self.now_ns);
                let Some(target) = self
                    .boot_offset
                    .and_then(|o| command_line::clock_to_event_time(clock_ns, reference, o))
                else {
                    self.set_message("no wall-clock time known yet for this source", true);
                    return Vec::new();
                };
                return self.go_to_time(target);
            }
            Command::Relative(delta) => {
                let reference = self.playhead_ns().unwrap_or(self.now_ns);
                let target = reference.saturating_add_signed(delta);
                return self.go_to_time(target);
            }
        }
        Vec::new()
    }

    /// Where a replay's playhead is, in event time.
    fn playhead_ns(&self) -> Option<u64> {
        match &self.status.mode {
            SourceMode::Replay(replay) => {
                Some(replay.start_ts_ns.saturating_add(replay.position_ns))
            }
            SourceMode::Live => None,
        }
    }

    /// A replay seeks to `target` (the timeline follows up to it); live, the timeline
    /// selects the current agent's first entry at or after it.
    fn go_to_time(&mut self, target: u64) -> Vec<Effect> {
        self.set_focus(PaneId::Timeline);
        if let Some(playhead) = self.playhead_ns() {
            let delta = (i128::from(target) - i128::from(playhead))
                .clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
            // The timeline follows the replay up to the new playhead.
            let log = self
                .current_agent
                .as_deref()
                .and_then(|k| self.logs.agent(k));
            self.timeline.move_by(isize::MAX / 2, log);
            return vec![Effect::Seek { delta_ns: delta }];
        }
        let Some(log) = self
            .current_agent
            .as_deref()
            .and_then(|k| self.logs.agent(k))
        else {
            self.set_message("select an agent first", true);
            return Vec::new();
        };
        let position = log
            .iter_from(log.start())
            .find(|(_, e)| e.observation.ts_ns >= target)
            .map_or(log.end().saturating_sub(1), |(p, _)| p);
        self.timeline.select_position(position, Some(log));
        self.set_message(
            format!("at {}", format_time(target, self.boot_offset)),
            false,
        );
        Vec::new()
    }

    /// The agent `query` names: its key, or the one agent whose key or name contains it.
    fn find_agent(&self, query: &str) -> Result<String, String> {
        if let Some((key, _)) = self.agent_names.iter().find(|(key, _)| key == query) {
            return Ok(key.clone());
        }
        let lower = query.to_lowercase();
        let matches: Vec<&(String, String)> = self
            .agent_names
            .iter()
            .filter(|(key, name)| {
                key.to_lowercase().contains(&lower) || name.to_lowercase().contains(&lower)
            })
            .collect();
        match matches.as_slice() {
            [] => Err(format!("no agent matches {query:?}")),
            [(key, _)] => Ok(key.clone()),
            several => {
                let names: Vec<&str> = several.iter().take(3).map(|(_, n)| n.as_str()).collect();
                Err(format!(
                    "{} agents match {query:?}: {}{}",
                    several.len(),
                    names.join(", "),
                    if several.len() > 3 { ", …" } else { "" }
                ))
            }
        }
    }

    fn back(&mut self) {
        if self.zoom {
            self.zoom = false;
            return;
        }
        if self.filter_of(self.focus).is_some_and(|f| !f.is_empty()) {
            self.apply_filter(self.focus, String::new());
            return;
        }
        // The evidence walk's marks and highlights go with Esc in the timeline.
        if self.focus == PaneId::Timeline && self.evidence_walk.is_some() {
            self.evidence_walk = None;
            self.timeline.evidence.clear();
            self.graph.evidence.clear();
            self.model_dirty = true;
            self.highlight.clear();
            self.subject_dirty = true;
            return;
        }
        let previous = self.history.pop().unwrap_or(PaneId::Agents);
        if previous != self.focus {
            self.focus = previous;
            if matches!(
                previous,
                PaneId::Graph | PaneId::Timeline | PaneId::AiBom | PaneId::Posture
            ) {
                self.content_pane = previous;
            }
            if matches!(previous, PaneId::AiBom | PaneId::Posture) {
                self.inventory_pane = previous;
            }
        }
    }

    /// `b`: the agent's learned baseline is what it did, attacks included. An agent with a
    /// high or critical finding is exported only when asked again while the question shows:
    /// `x` without what only its incidents' evidence stands for, `b` with everything, so an
    /// exfiltration endpoint does not become approved egress by one key press.
    fn export_baseline(&mut self, key: String) -> Vec<Effect> {
        let attacked = self
            .findings
            .worst_for(&key)
            .filter(|severity| *severity >= agentscope_analysis::detect::Severity::High);
        let confirmed =
            self.baseline_confirm.as_deref() == Some(key.as_str()) && self.message.is_some();
        if let (Some(severity), false) = (attacked, confirmed) {
            self.baseline_confirm = Some(key);
            self.set_message(
                // The choice first: it must fit the status line at 80 columns.
                format!(
                    "x: export without the attack · b: export all ({} finding)",
                    severity.name()
                ),
                true,
            );
            return Vec::new();
        }
        self.baseline_confirm = None;
        vec![Effect::ExportBaseline {
            agent_key: key,
            exclude: None,
        }]
    }

    /// `P`: the current agent's baseline, the one its enforcement decisions named (else its
    /// own key), to be promoted from audit to enforce once confirmed.
    fn promote(&mut self) -> Vec<Effect> {
        let Some(key) = self.current_agent.clone() else {
            self.set_message("select an agent first", true);
            return Vec::new();
        };
        vec![Effect::PlanPromotion { agent_key: key }]
    }

    /// `x`, answering `b`'s question: the baseline without the incidents' evidence.
    fn export_baseline_without_evidence(&mut self) -> Vec<Effect> {
        let pending = self
            .baseline_confirm
            .take()
            .filter(|_| self.message.is_some());
        let Some(key) = pending else {
            self.set_message(
                "x answers b on an agent with a high or critical finding",
                true,
            );
            return Vec::new();
        };
        let exclusion =
            crate::baseline::incident_exclusion(&self.findings, self.logs.agent(&key), &key);
        vec![Effect::ExportBaseline {
            agent_key: key,
            exclude: Some(exclusion),
        }]
    }

    /// Starts walking `finding`'s evidence: its agent is selected, and the next frame (which
    /// has the agent's log) selects the first timeline row holding one of its events.
    fn walk_evidence(&mut self, finding: FindingView) {
        self.agents.select_agent(&finding.agent_key);
        // Back from the evidence goes to the finding.
        self.open(Subject::Finding(finding.clone()));
        self.timeline.evidence = finding.evidence.clone();
        self.graph.evidence = finding.evidence.clone();
        self.model_dirty = true;
        self.highlight = finding.matched.clone();
        self.evidence_walk = Some(EvidenceWalk {
            finding,
            next: 0,
            pending: true,
        });
    }

    /// The pending step of the evidence walk, once the finding's agent is the current one:
    /// the next row holding its events (wrapping), selected and shown in Detail.
    fn step_evidence(&mut self) {
        let Some(walk) = self.evidence_walk.as_mut().filter(|w| w.pending) else {
            return;
        };
        if self.current_agent.as_deref() != Some(walk.finding.agent_key.as_str()) {
            return;
        }
        walk.pending = false;
        let agent = walk.finding.agent_key.clone();
        let Some(log) = self.logs.agent(&agent) else {
            return;
        };
        let rows = walk_stops(log, &walk.finding);
        if rows.is_empty() {
            let id = walk.finding.id.clone();
            self.set_message(
                format!("{id}: its evidence is not in the timeline (older than the log keeps)"),
                true,
            );
            return;
        }
        let first_step = walk.next == 0;
        let step = walk.next % rows.len();
        walk.next = step + 1;
        let id = walk.finding.id.clone();
        self.timeline.select_position(rows[step], Some(log));
        self.set_focus(PaneId::Timeline);
        let subject = Subject::Observation {
            agent,
            position: rows[step],
        };
        if first_step {
            self.open(subject);
        } else {
            // The walk's later steps replace its event: back goes to the finding, not
            // through every evidence row.
            self.subject = subject;
            self.subject_dirty = true;
        }
        self.set_message(
            format!("{id} evidence {} of {} · e next", step + 1, rows.len()),
            false,
        );
    }

    /// How far `<` and `>` move the replay (see [`AppOptions::seek_ns`]).
    fn seek_step_ns(&self) -> u64 {
        if let Some(step) = self.options.seek_ns {
            return step;
        }
        match &self.status.mode {
            SourceMode::Replay(replay) => (replay.duration_ns / 20).max(100_000_000),
            SourceMode::Live => 10_000_000_000,
        }
    }

    /// Moves the replay to where the next (or previous) finding appeared (see
    /// [`App::finding_times`]): a finding the replay has not reached yet is not known.
    fn seek_to_finding(&mut self, forward: bool) -> Vec<Effect> {
        let SourceMode::Replay(replay) = &self.status.mode else {
            self.set_message("seeking applies to replays only", true);
            return Vec::new();
        };
        let now = replay.start_ts_ns.saturating_add(replay.position_ns);
        let mut times: Vec<u64> = self.finding_times.values().copied().collect();
        times.sort_unstable();
        // A finding is "at" the playhead when the replay stopped right after it.
        const JUST_AFTER: u64 = 1_000_000;
        let target = if forward {
            times.iter().find(|t| **t >= now + JUST_AFTER).copied()
        } else {
            times
                .iter()
                .rev()
                .find(|t| **t + JUST_AFTER <= now)
                .copied()
        };
        match target {
            Some(target) => vec![Effect::Seek {
                delta_ns: (i128::from(target) - i128::from(now))
                    .clamp(i128::from(i64::MIN), i128::from(i64::MAX))
                    as i64,
            }],
            None => {
                let which = if forward { "after" } else { "before" };
                self.set_message(format!("no finding {which} the playhead yet"), false);
                Vec::new()
            }
        }
    }

    fn next_finding(&mut self, forward: bool) {
        let found = if forward {
            self.findings.select_next()
        } else {
            self.findings.select_prev()
        };
        let Some(finding) = found.cloned() else {
            self.set_message("no findings", false);
            return;
        };
        // Focus goes to the findings pane, where the next key (Enter for the evidence, n for
        // the next finding) acts; Detail shows the finding even when its agent is another.
        self.agents.select_agent(&finding.agent_key);
        self.open(Subject::Finding(finding));
        self.set_focus(PaneId::Findings);
    }

    fn filter_of(&self, pane: PaneId) -> Option<&str> {
        match pane {
            PaneId::Agents => Some(&self.agents.filter),
            PaneId::Graph => Some(&self.graph.filter),
            PaneId::Timeline => Some(&self.timeline.filter),
            PaneId::Findings => Some(&self.findings.filter),
            PaneId::Detail | PaneId::AiBom | PaneId::Posture => None,
        }
    }

    fn apply_filter(&mut self, pane: PaneId, filter: String) {
        match pane {
            PaneId::Agents => {
                self.agents.filter = filter;
                self.model_dirty = true;
                self.ticks_since_refresh = u64::MAX / 2;
            }
            PaneId::Graph => self.graph.set_filter(filter),
            PaneId::Timeline => {
                let log = self
                    .current_agent
                    .as_deref()
                    .and_then(|k| self.logs.agent(k));
                self.timeline.set_filter(filter, log);
                if let Some(error) = self.timeline.filter_error() {
                    let error = error.to_string();
                    self.set_message(&error, true);
                }
            }
            PaneId::Findings => self.findings.set_filter(filter),
            PaneId::Detail | PaneId::AiBom | PaneId::Posture => {}
        }
    }

    fn pane_at(&self, x: u16, y: u16) -> Option<PaneId> {
        let position = Position { x, y };
        PANES
            .iter()
            .copied()
            .find(|pane| self.areas.get(pane).is_some_and(|r| r.contains(position)))
    }

    fn handle_mouse(&mut self, mouse: &MouseEvent) {
        if self.help {
            if let MouseEventKind::Down(_) = mouse.kind {
                self.help = false;
            }
            return;
        }
        let Some(pane) = self.pane_at(mouse.column, mouse.row) else {
            return;
        };
        match mouse.kind {
            MouseEventKind::Down(MouseButton::Left) => {
                if pane != self.focus {
                    self.set_focus(pane);
                }
                let position = Position {
                    x: mouse.column,
                    y: mouse.row,
                };
                match pane {
                    PaneId::Agents => {
                        self.agents.click(position);
                    }
                    PaneId::Graph => {
                        let len = self.graph.rows().len();
                        if let Some(row) =
                            self.graph
                                .cursor
                                .row_at(self.graph.last_area, mouse.row, len)
                        {
                            if row == self.graph.cursor.selected {
                                self.graph.toggle();
                            } else {
                                self.graph.select(row);
                            }
                        }
                    }
                    PaneId::Timeline => {
                        let log = self
                            .current_agent
                            .as_deref()
                            .and_then(|k| self.logs.agent(k));
                        if let Some(row) = self.timeline.row_at(mouse.row, log) {
                            self.timeline.select_row(row, log);
                        }
                    }
                    PaneId::Findings => {
                        let inner = self.pane_inner(PaneId::Findings);
                        if let Some(row) =
                            self.findings
                                .cursor
                                .row_at(inner, mouse.row, self.findings.len())
                        {
                            let len = self.findings.len();
                            self.findings.cursor.select(row, len);
                        }
                    }
                    PaneId::Detail | PaneId::AiBom | PaneId::Posture => {}
                }
                // A click on a row is deliberate: it opens the row.
                self.open_selected();
            }
            MouseEventKind::ScrollDown | MouseEventKind::ScrollUp => {
                let delta: isize = if mouse.kind == MouseEventKind::ScrollDown {
                    3
                } else {
                    -3
                };
                let height = self.pane_inner(pane).height as usize;
                match pane {
                    PaneId::Agents => {
                        if delta > 0 {
                            self.agents.state.scroll_down(3);
                        } else {
                            self.agents.state.scroll_up(3);
                        }
                    }
                    PaneId::Graph => {
                        let len = self.graph.rows().len();
                        self.graph.cursor.scroll_by(delta, height, len);
                        let selected = self.graph.cursor.selected;
                        self.graph.select(selected);
                    }
                    PaneId::Timeline => {
                        let log = self
                            .current_agent
                            .as_deref()
                            .and_then(|k| self.logs.agent(k));
                        self.timeline.scroll_by(delta, log);
                    }
                    PaneId::Findings => {
                        let len = self.findings.len();
                        self.findings.cursor.scroll_by(delta, height, len);
                    }
                    PaneId::Detail | PaneId::AiBom | PaneId::Posture => {
                        self.scroll_text(pane, delta)
                    }
                }
            }
            _ => {}
        }
    }

    /// Applies an effect to the source; returns `true` when the console should quit.
    pub fn apply_effect(
        &mut self,
        effect: Effect,
        source: &mut dyn Source,
        exporter: &mut BaselineExporter,
    ) -> bool {
        let result = match &effect {
            Effect::Quit => return true,
            Effect::Pause => source.pause().map(|()| "paused".to_string()),
            Effect::Resume => source.resume().map(|()| "playing".to_string()),
            Effect::Speed(change) => source.change_speed(*change).map(|()| String::new()),
            Effect::Step => source.step().map(|()| "step".to_string()),
            Effect::Seek { delta_ns } => source.seek(*delta_ns).map(|()| {
                let sign = if *delta_ns < 0 { "-" } else { "+" };
                format!("seek {sign}{}s", delta_ns.unsigned_abs() / 1_000_000_000)
            }),
            Effect::ToggleRecording => source.toggle_recording().map(|()| String::new()),
            Effect::PlanPromotion { agent_key } => {
                let baseline_key = source
                    .pipeline()
                    .model()
                    .agents()
                    .find(|a| &a.key == agent_key)
                    .and_then(|a| a.enforcement.baseline.clone())
                    .unwrap_or_else(|| agent_key.clone());
                match crate::promotion::plan(&self.options.baseline_dirs, &baseline_key) {
                    Ok(plan) => {
                        self.set_message(plan.question(), true);
                        self.promotion_confirm = Some(plan);
                    }
                    // Refusals (partial learning, incident evidence) are the answer: shown.
                    Err(err) => self.set_message(format!("not promoted: {err:#}"), true),
                }
                return false;
            }
            Effect::Promote(plan) => {
                match crate::promotion::write(plan) {
                    Ok(path) => self.set_message(
                        format!(
                            "wrote {} (rev {}: {} enforce)",
                            path.display(),
                            plan.revision_after,
                            plan.categories.join("+")
                        ),
                        false,
                    ),
                    Err(err) => self.set_message(format!("promotion failed: {err:#}"), true),
                }
                return false;
            }
            Effect::ExportBaseline { agent_key, exclude } => {
                match exporter(source.pipeline(), agent_key, exclude.as_ref()) {
                    Ok(path) => {
                        // The path first: it must fit.
                        let what = match exclude {
                            Some(_) => "baseline without the attack, see its header",
                            None => "baseline",
                        };
                        self.set_message(format!("wrote {} ({what})", path.display()), false);
                    }
                    Err(err) => self.set_message(format!("baseline export failed: {err:#}"), true),
                }
                return false;
            }
        };
        match result {
            Ok(text) if text.is_empty() => {}
            Ok(text) => self.set_message(text, false),
            Err(err) => self.set_message(err.to_string(), true),
        }
        false
    }

    /// Draws the whole screen.
    pub fn render(&mut self, frame: &mut Frame, pipeline: &Pipeline) {
        self.prepare(pipeline);
        let area = frame.area();
        let [header, main, hints, status] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(1),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .areas(area);
        self.areas.clear();
        if self.zoom {
            self.areas.insert(self.focus, main);
        } else if main.width >= WIDE {
            let [left, middle, right] = Layout::horizontal([
                Constraint::Percentage(26),
                Constraint::Percentage(40),
                Constraint::Percentage(34),
            ])
            .areas(main);
            let [agents, findings] =
                Layout::vertical([Constraint::Percentage(62), Constraint::Percentage(38)])
                    .areas(left);
            let [graph, timeline] =
                Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)])
                    .areas(middle);
            let [detail, aibom] =
                Layout::vertical([Constraint::Percentage(64), Constraint::Percentage(36)])
                    .areas(right);
            self.areas.extend([
                (PaneId::Agents, agents),
                (PaneId::Findings, findings),
                (PaneId::Graph, graph),
                (PaneId::Timeline, timeline),
                (PaneId::Detail, detail),
                (self.inventory_pane, aibom),
            ]);
        } else {
            let [left, right] =
                Layout::horizontal([Constraint::Percentage(36), Constraint::Percentage(64)])
                    .areas(main);
            let [agents, findings] =
                Layout::vertical([Constraint::Percentage(62), Constraint::Percentage(38)])
                    .areas(left);
            let [content, detail] =
                Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)])
                    .areas(right);
            self.areas.extend([
                (PaneId::Agents, agents),
                (PaneId::Findings, findings),
                (self.content_pane, content),
                (PaneId::Detail, detail),
            ]);
        }
        for pane in PANES {
            if let Some(area) = self.areas.get(&pane).copied() {
                self.render_pane(frame, pane, area);
            }
        }
        self.render_header(frame, header);
        self.render_hints(frame, hints);
        self.render_status(frame, status);
        if self.help {
            // Over everything but the status line: the help is taller than the panes' area.
            let above_status = Rect {
                height: area.height.saturating_sub(1),
                ..area
            };
            self.render_help(frame, above_status);
        }
    }

    /// Breadcrumbs on the left (where Detail is, and the back key), the pane switcher on the
    /// right (the panes by number, or those not on screen when room is short).
    fn render_header(&self, frame: &mut Frame, area: Rect) {
        let styles = &self.options.styles;
        let width = area.width as usize;
        let back_key = (!self.back_history.is_empty())
            .then(|| first_key(&self.options.keymap, Action::PreviousSubject))
            .flatten();
        // The crumbs keep at least 40 columns, and all they need when the switcher's short
        // form then still fits; otherwise the switcher gets all but 40 columns.
        let whole_crumbs = spans_width(&crumb_spans(
            &self.trail,
            back_key.as_deref(),
            usize::MAX,
            styles,
        ));
        let shown = |pane| self.areas.contains_key(&pane);
        let mut switcher = switcher_spans(
            self.focus,
            shown,
            width.saturating_sub(whole_crumbs.max(40) + 2),
            styles,
        );
        if switcher.is_empty() {
            switcher = switcher_spans(self.focus, shown, width.saturating_sub(42), styles);
        }
        let switcher_width = spans_width(&switcher);
        let crumbs = crumb_spans(
            &self.trail,
            back_key.as_deref(),
            // A space between the crumbs and the switcher, and one after it.
            width.saturating_sub(switcher_width + 2),
            styles,
        );
        let mut spans = crumbs;
        let used = spans_width(&spans);
        if switcher_width > 0 {
            spans.push(Span::raw(
                " ".repeat(width.saturating_sub(used + switcher_width + 1)),
            ));
            spans.extend(switcher);
        }
        frame.render_widget(Line::from(spans), area);
    }

    fn render_hints(&self, frame: &mut Frame, area: Rect) {
        let editing = if self.command_edit.is_some() {
            Editing::Command
        } else if self.filter_edit.is_some() {
            Editing::Filter
        } else {
            Editing::None
        };
        let line = hint_line(
            self.focus,
            editing,
            matches!(self.subject, Subject::Finding(_)),
            &self.options.keymap,
            &self.options.styles,
            area.width as usize,
        );
        frame.render_widget(line, area);
    }

    fn block(&self, pane: PaneId, title: String) -> Block<'static> {
        let styles = &self.options.styles;
        let focused = pane == self.focus;
        let filter = self
            .filter_of(pane)
            .filter(|f| !f.is_empty())
            .map(|f| format!(" [/{f}]"))
            .unwrap_or_default();
        Block::default()
            .borders(Borders::ALL)
            .border_type(if focused {
                BorderType::Thick
            } else {
                BorderType::Plain
            })
            .border_style(if focused {
                styles.border_focused
            } else {
                styles.border
            })
            .title(Span::styled(
                // Titles name agents, tools and files: their control characters made visible.
                visible(&format!(" {title}{filter} ")),
                if focused {
                    styles.title_focused
                } else {
                    styles.title
                },
            ))
    }

    fn render_pane(&mut self, frame: &mut Frame, pane: PaneId, area: Rect) {
        let name = if self.current_name.is_empty() {
            "no agent".to_string()
        } else {
            self.current_name.clone()
        };
        let boot_offset = self.boot_offset;
        match pane {
            PaneId::Agents => {
                let block = self.block(pane, format!("Agents ({})", self.agents.agent_count));
                self.agents.render(frame, area, block, &self.options.styles);
            }
            PaneId::Graph => {
                let order = self.graph.order;
                let title = format!(
                    "Graph{} · {name} · {} nodes {} edges",
                    crate::list_sort::title_suffix(order.name(), order == Default::default()),
                    self.graph.reachable_nodes,
                    self.graph.reachable_edges
                );
                // What `new` is relative to, where the pane's title leaves room.
                let block = self.block(pane, title).title_bottom(
                    Line::styled(
                        format!(" {} ", self.graph.novelty.describe()),
                        self.options.styles.muted,
                    )
                    .right_aligned(),
                );
                self.graph.render(
                    frame,
                    area,
                    block,
                    &self.options.styles,
                    self.now_ns,
                    self.options.new_edge_ns,
                    boot_offset,
                );
            }
            PaneId::Timeline => {
                let log = self
                    .current_agent
                    .as_deref()
                    .and_then(|k| self.logs.agent(k));
                let position = self.timeline.position_text(log);
                let block = self.block(
                    pane,
                    format!("Timeline · {name} {position}")
                        .trim_end()
                        .to_string(),
                );
                self.timeline
                    .render(frame, area, block, log, &self.options.styles, boot_offset);
            }
            PaneId::Detail => {
                let inner = Block::bordered().inner(area);
                self.detail.last_area = inner;
                // The text first: the title says which lines it drew.
                if !self.detail.is_empty() {
                    self.detail.render(frame, inner);
                }
                let title = if self.detail_title.is_empty() {
                    "Detail".to_string()
                } else {
                    format!("Detail · {} {}", self.detail_title, self.detail.position())
                };
                let block = self.block(pane, title.trim_end().to_string());
                frame.render_widget(block, area);
                if self.detail.is_empty() {
                    frame.render_widget(
                        Paragraph::new(Line::styled(
                            "Enter opens the selection here: an agent, an edge, an event, a finding.",
                            self.options.styles.muted,
                        ))
                        .wrap(ratatui::widgets::Wrap { trim: true }),
                        inner,
                    );
                }
            }
            PaneId::AiBom => {
                let block = self.block(pane, format!("AI-BOM · {name}"));
                render_scroll_text(
                    frame,
                    area,
                    block,
                    &mut self.aibom,
                    "Select an agent to see its models, MCP servers, tools and frameworks.",
                    self.options.styles.muted,
                );
            }
            PaneId::Posture => {
                let block = self.block(pane, format!("Posture · {name}"));
                render_scroll_text(
                    frame,
                    area,
                    block,
                    &mut self.posture,
                    "Select an agent to compare what it may do with what it did.",
                    self.options.styles.muted,
                );
            }
            PaneId::Findings => {
                let order = self.findings.order;
                let block = self.block(
                    pane,
                    format!(
                        "Findings ({}){}",
                        self.findings.len(),
                        crate::list_sort::title_suffix(order.name(), order == Default::default())
                    ),
                );
                self.findings
                    .render(frame, area, block, &self.options.styles, boot_offset);
            }
        }
    }

    fn render_status(&self, frame: &mut Frame, area: Rect) {
        let styles = &self.options.styles;
        frame.render_widget(Block::default().style(styles.status), area);
        let status = &self.status;
        let mut left: Vec<Span<'static>> = Vec::new();
        match &status.mode {
            SourceMode::Live => {
                left.push(Span::styled(" ● LIVE ", styles.status.patch(styles.accent)))
            }
            SourceMode::Replay(replay) => {
                let state = if replay.finished {
                    "■ END"
                } else if replay.paused {
                    "⏸ PAUSED"
                } else {
                    "▶ REPLAY"
                };
                let speed = if replay.speed.is_infinite() {
                    "max".to_string()
                } else {
                    format!("{}", replay.speed)
                };
                left.push(Span::styled(
                    format!(" {state} "),
                    styles.status.patch(styles.accent),
                ));
                left.push(Span::styled(
                    format!(
                        "{}/{} ×{speed} ",
                        format_position(replay.position_ns),
                        format_position(replay.duration_ns)
                    ),
                    styles.status,
                ));
                // A message or a filter being typed needs the room more than the bar does.
                if self.message.is_none()
                    && self.filter_edit.is_none()
                    && self.command_edit.is_none()
                {
                    left.push(Span::styled(
                        format!("{} ", position_bar(replay, self.finding_times.values(), 12)),
                        styles.status,
                    ));
                }
            }
        }
        if !status.label.is_empty() {
            left.push(Span::styled(format!("{} ", status.label), styles.status));
        }
        let counters_at = left.len();
        left.push(Span::styled(
            format!(
                "│ {} ev · {}/s · ",
                format_count(status.events),
                format_count(status.events_per_sec.round() as u64),
            ),
            styles.status,
        ));
        left.push(Span::styled(
            format!("drops {} ", format_count(status.drops)),
            if status.drops > 0 {
                styles.status.patch(styles.warning)
            } else {
                styles.status
            },
        ));
        match &status.recording {
            RecordingState::Unavailable => {}
            RecordingState::Off => left.push(Span::styled("│ rec off ", styles.status)),
            RecordingState::On { path, bytes } => left.push(Span::styled(
                format!("│ ● REC {} {} ", path.display(), format_bytes(*bytes)),
                styles.status.patch(styles.error),
            )),
        }
        if let Some(text) = &self.command_edit {
            left.push(Span::styled(
                format!("│ :{text}▏ "),
                styles.status.patch(styles.accent),
            ));
        } else if let Some((pane, text)) = &self.filter_edit {
            left.push(Span::styled(
                format!("│ filter {pane:?}: /{text}▏ (Enter keep, Esc clear) "),
                styles.status.patch(styles.accent),
            ));
        } else if let Some((message, error)) = &self.message {
            left.push(Span::styled(
                format!("│ {message} "),
                if *error {
                    styles.status.patch(styles.error)
                } else {
                    styles.status
                },
            ));
        }
        let help = self.options.keymap.describe(Action::Help);
        let right = vec![Span::styled(format!("{help} help "), styles.status)];
        // A message (a written file's whole path) needs the room more than the event counts
        // do, for the few seconds it shows; drops stay (lost data is never hidden).
        let width = |spans: &[Span]| -> usize {
            spans
                .iter()
                .map(|s| crate::text::text_width(&s.content))
                .sum()
        };
        if self.message.is_some()
            && self.filter_edit.is_none()
            && width(&left) + width(&right) + 1 > area.width as usize
        {
            left.remove(counters_at);
            left[counters_at].content = format!("│ {}", left[counters_at].content).into();
        }
        frame.render_widget(fit_columns(left, right, area.width as usize), area);
    }

    fn render_help(&self, frame: &mut Frame, area: Rect) {
        let styles = &self.options.styles;
        let keymap = &self.options.keymap;
        use HelpEntry::{One, Pair, Panes};
        let sections: [(&str, &[HelpEntry]); 4] = [
            (
                "Navigation",
                &[
                    One(Action::Up),
                    One(Action::Down),
                    One(Action::Left),
                    One(Action::Right),
                    One(Action::PageUp),
                    One(Action::PageDown),
                    One(Action::Top),
                    One(Action::Bottom),
                    One(Action::NextPane),
                    One(Action::PrevPane),
                    One(Action::DrillIn),
                    One(Action::Back),
                    One(Action::Filter),
                    One(Action::Zoom),
                    Panes,
                    One(Action::PreviousSubject),
                    One(Action::Command),
                    One(Action::Sort),
                ],
            ),
            (
                "Replay and capture",
                &[
                    One(Action::Pause),
                    Pair(Action::Slower, Action::Faster, "replay slower / faster"),
                    One(Action::Step),
                    Pair(Action::SeekBack, Action::SeekForward, "seek back / forward"),
                    One(Action::Record),
                ],
            ),
            (
                "Investigation",
                &[
                    Pair(
                        Action::NextFinding,
                        Action::PrevFinding,
                        "next / previous finding",
                    ),
                    One(Action::NextEvidence),
                    Pair(
                        Action::SeekPrevFinding,
                        Action::SeekNextFinding,
                        "replay to prev/next finding",
                    ),
                    // One line for the pair, so that `P` still fits 80x24.
                    Pair(
                        Action::Baseline,
                        Action::ExcludeEvidence,
                        "baseline / without attack",
                    ),
                    One(Action::Promote),
                    One(Action::GroupBySession),
                    One(Action::ShowEnvironment),
                ],
            ),
            ("Console", &[One(Action::Help), One(Action::Quit)]),
        ];
        let two_columns = area.width >= 70;
        let column_width: usize = if two_columns { 38 } else { 40 };
        let entry_text = |entry: &HelpEntry| -> (String, &'static str) {
            match entry {
                One(action) => (keymap.describe(*action), action.description()),
                Pair(a, b, description) => (
                    format!("{} {}", keymap.describe(*a), keymap.describe(*b)),
                    description,
                ),
                // The pane keys share a line.
                Panes => {
                    let keys: Vec<String> = PANES
                        .iter()
                        .map(|pane| {
                            let action = pane_action(*pane);
                            keymap
                                .keys(action)
                                .first()
                                .map_or("-".into(), |k| k.to_string())
                        })
                        .collect();
                    (keys.join(" "), "pane by number")
                }
            }
        };
        let section_lines = |sections: &[(&str, &[HelpEntry])]| {
            // Keys as wide as the column's widest (at most 16), the rest for what they do.
            let key_width = sections
                .iter()
                .flat_map(|(_, entries)| entries.iter())
                .map(|e| crate::text::text_width(&entry_text(e).0))
                .max()
                .unwrap_or(0)
                .min(16);
            let mut lines = Vec::new();
            for (title, entries) in sections {
                if !lines.is_empty() {
                    lines.push(Line::raw(""));
                }
                lines.push(Line::styled(title.to_string(), styles.accent));
                for entry in *entries {
                    let (keys, description) = entry_text(entry);
                    lines.push(fit_columns(
                        vec![
                            Span::styled(format!("{keys:<key_width$} "), styles.key),
                            Span::styled(description.to_string(), styles.text),
                        ],
                        Vec::new(),
                        column_width,
                    ));
                }
            }
            lines
        };
        let (first, second) = if two_columns {
            (section_lines(&sections[..1]), section_lines(&sections[1..]))
        } else {
            (section_lines(&sections), Vec::new())
        };
        let footer = Line::styled(
            "Mouse: click selects, wheel scrolls. Keys: console.toml [keys].",
            styles.muted,
        );
        let rows = first.len().max(second.len()) + 2;
        let width = if two_columns {
            column_width * 2 + 4
        } else {
            column_width + 2
        } as u16;
        let height = (rows as u16 + 2).min(area.height);
        let width = width.min(area.width);
        let popup = Rect {
            x: area.x + (area.width - width) / 2,
            y: area.y + (area.height - height) / 2,
            width,
            height,
        };
        frame.render_widget(Clear, popup);
        let block = Block::bordered()
            .border_type(BorderType::Double)
            .border_style(styles.border_focused)
            .title(Span::styled(" Keys ", styles.title_focused))
            .style(styles.text);
        let inner = block.inner(popup);
        frame.render_widget(block, popup);
        let [body, _, foot] = Layout::vertical([
            Constraint::Min(1),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .areas(inner);
        if two_columns {
            let [a, _, b] = Layout::horizontal([
                Constraint::Length(column_width as u16),
                Constraint::Length(2),
                Constraint::Min(1),
            ])
            .areas(body);
            frame.render_widget(Paragraph::new(first), a);
            frame.render_widget(Paragraph::new(second), b);
        } else {
            frame.render_widget(Paragraph::new(first), body);
        }
        frame.render_widget(Paragraph::new(footer).style(Style::new()), foot);
    }
}

/// The timeline rows an evidence walk stops at, in timeline order: an incident's first row
/// of each step (what each of its findings is about, so the walk goes injected ticket, misused
/// calls, read, POST without the rows in between), a finding's every evidence row.
fn walk_stops(log: &crate::log::AgentLog, finding: &FindingView) -> Vec<u64> {
    use crate::timeline_pane::overlaps;
    if finding.steps.is_empty() {
        return log
            .iter_from(log.start())
            .filter(|(_, e)| overlaps(&finding.evidence, &e.observation.events))
            .map(|(position, _)| position)
            .collect();
    }
    let mut stops: Vec<u64> = finding
        .steps
        .iter()
        .filter_map(|step| {
            log.iter_from(log.start())
                .find(|(_, e)| overlaps(step, &e.observation.events))
                .map(|(position, _)| position)
        })
        .collect();
    stops.sort_unstable();
    stops.dedup();
    stops
}
