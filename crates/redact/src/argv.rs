//! Secrets in a command line: `--password=x`, `--token x`, `-pSECRET` (MySQL clients),
//! `-a SECRET` (redis-cli), `-u user:pass` (curl), `-H "Authorization: …"`, DSNs, `NAME=value`.
//!
//! Each argument is scanned like a payload (headers, assignments, DSNs, tokens), and the flags
//! are read as a sequence so a secret in the argument after `--password` is found too. A
//! `sh -c "…"` string is split into words at whitespace and read the same way.

use super::scanner;
use super::secret_names::{is_secret_name, NameContext};

/// Masks secrets in `argv` in place (lengths kept where the text is ASCII); returns how many
/// values were masked.
pub fn redact_argv(argv: &mut [String]) -> usize {
    let mut bytes: Vec<Vec<u8>> = argv.iter().map(|a| a.as_bytes().to_vec()).collect();
    let words: Vec<Word> = (0..bytes.len())
        .map(|arg| Word {
            arg,
            start: 0,
            end: bytes[arg].len(),
        })
        .collect();
    let mut count = mask_flag_values(&mut bytes, &words);
    for arg in 0..bytes.len() {
        count += scanner::scan(&mut bytes[arg]).count;
        if bytes[arg].iter().any(u8::is_ascii_whitespace) {
            // A shell command inside one argument.
            let inner: Vec<Word> = split_words(&bytes[arg])
                .into_iter()
                .map(|(start, end)| Word { arg, start, end })
                .collect();
            count += mask_flag_values(&mut bytes, &inner);
        }
    }
    for (arg, masked) in argv.iter_mut().zip(bytes) {
        if arg.as_bytes() != masked.as_slice() {
            *arg = String::from_utf8_lossy(&masked).into_owned();
        }
    }
    count
}

/// A word of a command line: bytes `start..end` of argument `arg`.
#[derive(Debug, Clone, Copy)]
struct Word {
    arg: usize,
    start: usize,
    end: usize,
}

fn split_words(text: &[u8]) -> Vec<(usize, usize)> {
    let mut words = Vec::new();
    let mut start = None;
    for (i, b) in text.iter().enumerate() {
        match (b.is_ascii_whitespace(), start) {
            (true, Some(s)) => {
                words.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        words.push((s, text.len()));
    }
    words
}

/// Programs whose short flags carry a password: (program, flag, attached to the flag).
const PASSWORD_SHORT_FLAGS: &[(&str, &[u8], bool)] = &[
    ("mysql", b"-p", true),
    ("mysqldump", b"-p", true),
    ("mysqladmin", b"-p", true),
    ("mysqlimport", b"-p", true),
    ("mysqlsh", b"-p", true),
    ("mariadb", b"-p", true),
    ("mariadb-dump", b"-p", true),
    ("mariadb-admin", b"-p", true),
    ("redis-cli", b"-a", false),
    ("sshpass", b"-p", false),
    ("mongo", b"-p", false),
    ("mongosh", b"-p", false),
    ("mongodump", b"-p", false),
];

fn mask(bytes: &mut [Vec<u8>], word: Word, from: usize) -> usize {
    let range = &mut bytes[word.arg][word.start + from..word.end];
    // Quotes around a value in a `sh -c` string stay, so the command still reads.
    let range = match range {
        [b'"' | b'\'', inner @ .., b'"' | b'\''] if !inner.is_empty() => inner,
        other => other,
    };
    if range.is_empty() || range.iter().all(|&b| b == b'*') {
        return 0;
    }
    range.fill(b'*');
    1
}

fn mask_flag_values(bytes: &mut [Vec<u8>], words: &[Word]) -> usize {
    let mut count = 0;
    let mut program: Option<String> = None;
    let mut i = 0;
    while i < words.len() {
        let word = words[i];
        let text = bytes[word.arg][word.start..word.end].to_vec();
        if text.first() != Some(&b'-') {
            // The last program named whose short flags are known (`sudo mysql -p…`,
            // `sshpass -p … ssh`).
            let base = text.rsplit(|&b| b == b'/').next().unwrap_or_default();
            let base = String::from_utf8_lossy(base);
            if base == "curl" || PASSWORD_SHORT_FLAGS.iter().any(|(p, _, _)| *p == base) {
                program = Some(base.into_owned());
            }
        }
        if text.starts_with(b"-") {
            let name_end = text.iter().position(|&b| b == b'=').unwrap_or(text.len());
            let name = &text[..name_end];
            let secret = is_secret_name(name, NameContext::Parameter);
            if secret && name_end < text.len() {
                count += mask(bytes, word, name_end + 1);
            } else if secret && name_end == text.len() && text.starts_with(b"--") {
                if let Some(next) = words.get(i + 1) {
                    count += mask(bytes, *next, 0);
                    i += 2;
                    continue;
                }
            }
            if let Some(prog) = &program {
                for (p, flag, attached) in PASSWORD_SHORT_FLAGS {
                    if prog != p || !text.starts_with(flag) {
                        continue;
                    }
                    if *attached && text.len() > flag.len() {
                        count += mask(bytes, word, flag.len());
                    } else if !attached && text.len() == flag.len() {
                        if let Some(next) = words.get(i + 1) {
                            count += mask(bytes, *next, 0);
                            i += 1;
                        }
                    }
                }
                if prog == "curl" && (text == b"-u" || text == b"--user") {
                    if let Some(next) = words.get(i + 1).copied() {
                        let value = &bytes[next.arg][next.start..next.end];
                        if let Some(colon) = value.iter().position(|&b| b == b':') {
                            count += mask(bytes, next, colon + 1);
                        }
                        i += 1;
                    }
                }
            }
        }
        i += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redacted(argv: &[&str]) -> Vec<String> {
        let mut argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        redact_argv(&mut argv);
        argv
    }

    #[test]
    fn password_flags_in_every_form_are_masked() {
        let cases: &[(&[&str], &str)] = &[
            (&["mysql", "-uroot", "-pS3cretPw", "db"], "S3cretPw"),
            (&["psql", "--password=S3cretPw"], "S3cretPw"),
            (&["tool", "--password", "S3cretPw"], "S3cretPw"),
            (&["tool", "--api-key", "S3cretPw"], "S3cretPw"),
            (&["tool", "--client-secret=S3cretPw"], "S3cretPw"),
            (&["redis-cli", "-a", "S3cretPw", "ping"], "S3cretPw"),
            (&["sshpass", "-p", "S3cretPw", "ssh", "h"], "S3cretPw"),
            (&["curl", "-u", "me:S3cretPw", "http://h"], "S3cretPw"),
            (
                &["curl", "-H", "Authorization: Bearer S3cretPwS3cretPw", "x"],
                "S3cretPw",
            ),
            (&["curl", "-H", "X-Auth-Token: S3cretPw", "x"], "S3cretPw"),
            (&["psql", "postgresql://app:S3cretPw@db:5432/x"], "S3cretPw"),
            (&["env", "OPENAI_API_KEY=S3cretPw", "agent"], "S3cretPw"),
            (
                &["sh", "-c", "mysql -h db -pS3cretPw -e 'select 1'"],
                "S3cretPw",
            ),
            (&["sh", "-c", "tool --token S3cretPw run"], "S3cretPw"),
            (&["curl", "https://h/x?api_key=S3cretPw&q=1"], "S3cretPw"),
        ];
        for (argv, secret) in cases {
            let out = redacted(argv);
            assert!(
                out.iter().all(|a| !a.contains(secret)),
                "{argv:?} -> {out:?}"
            );
            assert_eq!(out.len(), argv.len());
        }
    }

    #[test]
    fn ordinary_command_lines_are_kept() {
        for argv in [
            &["ssh", "-p", "2222", "host"][..],
            &["docker", "run", "-p", "8080:80", "img"],
            &["python3", "-m", "http.server", "8000"],
            &["ls", "-la", "/tmp"],
            &["git", "commit", "-m", "fix the password reset page"],
        ] {
            assert_eq!(redacted(argv), argv.to_vec(), "{argv:?}");
        }
    }
}
