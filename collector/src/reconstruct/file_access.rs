//! TODO(issue 3): file_access (placeholder until the parser lands).

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FileClass {}

pub fn classify(_path: &str) -> FileClass {
    FileClass {}
}

pub fn is_noise(_class: &FileClass) -> bool {
    false
}
