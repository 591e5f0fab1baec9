//! The classes of paths already classified, so a path opened again is not classified again.
//!
//! A process opens the same files over and over (its libraries, its interpreter's modules,
//! its configuration, and every new process of the same program the same ones again), and
//! [`file_access::classify`] is a long list of prefix and substring checks: it was about a
//! twentieth of the replay's time. A class depends on the path alone, so a remembered one is
//! the same answer. The table is bounded: at most [`MAX_PATHS`] paths of at most
//! [`MAX_PATH_BYTES`] each (longer ones are classified every time), and it starts over when
//! full, so it holds well under a megabyte whatever the input.

use std::collections::HashMap;

use super::file_access::{self, FileClass};

/// Paths remembered at most.
pub const MAX_PATHS: usize = 2048;
/// Longer paths are classified on every open and not remembered.
pub const MAX_PATH_BYTES: usize = 256;

/// Remembered classes by path.
#[derive(Default)]
pub struct FileClasses {
    classes: HashMap<String, FileClass>,
}

impl FileClasses {
    /// `path`'s class, as [`file_access::classify`] says.
    pub fn classify(&mut self, path: &str) -> FileClass {
        if let Some(class) = self.classes.get(path) {
            return *class;
        }
        let class = file_access::classify(path);
        if path.len() <= MAX_PATH_BYTES {
            if self.classes.len() >= MAX_PATHS {
                self.classes.clear();
            }
            self.classes.insert(path.to_string(), class);
        }
        class
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_classes_are_what_classify_says() {
        let mut classes = FileClasses::default();
        let paths = [
            "/home/a/.ssh/id_ed25519",
            "/usr/lib/python3.12/json/__init__.py",
            "/etc/shadow",
            "/etc/../etc/shadow",
            "/app/data.csv",
        ];
        for _ in 0..2 {
            for path in paths {
                assert_eq!(
                    classes.classify(path),
                    file_access::classify(path),
                    "{path}"
                );
            }
        }
        assert_eq!(classes.classes.len(), paths.len());
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut classes = FileClasses::default();
        for i in 0..MAX_PATHS * 3 {
            let path = format!("/tmp/file-{i}");
            assert_eq!(classes.classify(&path), file_access::classify(&path));
            assert!(classes.classes.len() <= MAX_PATHS);
        }
        let long = format!("/home/a/.aws/{}/credentials", "d".repeat(MAX_PATH_BYTES));
        assert_eq!(classes.classify(&long), file_access::classify(&long));
        assert!(!classes.classes.contains_key(&long));
    }
}
