//! Fuzzes everything after event decoding: arbitrary event sequences (see
//! `src/event_script.rs`) go through reconstruction, the model and detection, then the graph
//! snapshot, its JSON and a keyframe state are built. Hostile processes choose most of these
//! bytes in real captures, so none of it may panic, hang or allocate wildly.
#![no_main]

use agentscope_analysis::baseline::LearnerOptions;
use agentscope_analysis::detect::DetectorOptions;
use agentscope_analysis::model::{HostOnlyIdentity, ModelOptions};
use agentscope_analysis::pipeline::Pipeline;
use agentscope_reconstruct::ReconstructOptions;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let script = event_script::decode(data);
    let model = if script.small_model {
        ModelOptions {
            max_nodes: 32,
            max_edges: 64,
        }
    } else {
        ModelOptions::default()
    };
    let mut detection = DetectorOptions::default();
    if script.short_learning {
        detection.learner = LearnerOptions::default().with_learning_period_seconds(1);
    }
    let mut pipeline = Pipeline::new(
        ReconstructOptions::default(),
        model,
        Box::new(HostOnlyIdentity),
    )
    .with_detection(detection);
    for event in &script.events {
        // Detections come back with the observations.
        let _ = pipeline.push(event);
    }
    pipeline.finish();
    let snapshot = pipeline.snapshot();
    let _ = serde_json::to_vec(&snapshot);
    let _ = pipeline.state();
});
