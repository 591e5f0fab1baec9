//! Whether agentscope sees a process's TLS plaintext, and how, or why not.
//!
//! The collector decides this per process from what it found in the binaries the process
//! runs and the libraries it loads (see `agentscope-kernel`'s `tls_targets`), and stamps the
//! verdict on every [`crate::EventBody::TlsHello`] it emits, so a recording carries it and a
//! replay reports the same coverage. Each way of finding a TLS stack's read/write functions is
//! one [`PlaintextMethod`]; a process none of them covers is a blind spot, with a
//! [`NotVisibleReason`].

use serde::{Deserialize, Serialize};

/// How the plaintext of a process's TLS connections is captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaintextMethod {
    /// Uprobes on the exported OpenSSL API (`SSL_read`/`SSL_write` and their `_ex` forms): the
    /// system libssl, or an executable that embeds OpenSSL and exports it (Node).
    OpensslSymbols,
    /// BoringSSL linked into a stripped binary (Bun, so Claude Code), its read/write functions
    /// located from the binary's own structure.
    BoringsslLocated,
    /// OpenSSL 3 linked into a stripped static binary that does not export it (Codex CLI's
    /// `native-tls`), its internal read/write functions located from the binary's own code.
    OpensslLocated,
    /// rustls in a stripped static binary (Codex CLI).
    RustlsLocated,
    /// Go `crypto/tls` `(*Conn).Read`/`(*Conn).Write`, found through the binary's pclntab.
    GoCryptoTls,
}

impl PlaintextMethod {
    /// Words for people (the coverage table, the console).
    pub fn describe(self) -> &'static str {
        match self {
            PlaintextMethod::OpensslSymbols => "OpenSSL symbols",
            PlaintextMethod::BoringsslLocated => "BoringSSL located",
            PlaintextMethod::OpensslLocated => "OpenSSL located",
            PlaintextMethod::RustlsLocated => "rustls located",
            PlaintextMethod::GoCryptoTls => "Go crypto/tls",
        }
    }
}

/// Why a process's TLS plaintext is not visible.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum NotVisibleReason {
    /// The binaries it runs were analysed and no supported TLS stack was found in them.
    StackNotRecognised,
    /// A TLS stack was located but its probes failed validation (they would have read garbage).
    ProbeFailedValidation { detail: String },
    /// A TLS stack was found but the uprobes could not be attached.
    AttachFailed { detail: String },
    /// The binary links two TLS stacks, one probed, and this connection went through the
    /// other (its ClientHello was not written inside the probed stack's handshake).
    OtherStackNotProbed { detail: String },
    /// The connection began before the probes were attached (the binary was being analysed
    /// when its process connected): its first calls were not captured.
    ProbesAttachedLate { detail: String },
    /// The process's executable could not be analysed (started before the collector and gone,
    /// or unreadable): nothing is known about its TLS stack.
    NotAnalysed,
    /// The collector was told to leave out this process's payloads (`--no-payloads-of`, or a
    /// process started by one given to it): whatever its TLS stack, nothing of it is copied.
    PayloadsLeftOut,
}

impl NotVisibleReason {
    pub fn describe(&self) -> String {
        match self {
            NotVisibleReason::StackNotRecognised => "TLS stack not recognised".into(),
            NotVisibleReason::ProbeFailedValidation { detail } => {
                format!("probe failed validation ({detail})")
            }
            NotVisibleReason::AttachFailed { detail } => format!("attach failed ({detail})"),
            NotVisibleReason::OtherStackNotProbed { detail } => {
                format!("another TLS stack in the binary, not probed ({detail})")
            }
            NotVisibleReason::ProbesAttachedLate { detail } => {
                format!("probes attached after the connection began ({detail})")
            }
            NotVisibleReason::NotAnalysed => "binary not analysed".into(),
            NotVisibleReason::PayloadsLeftOut => {
                "payloads left out on request (--no-payloads-of)".into()
            }
        }
    }
}

/// The verdict for one process.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "plaintext", rename_all = "snake_case")]
pub enum TlsCoverage {
    /// Probes are attached to a TLS stack this process uses.
    Seen {
        method: PlaintextMethod,
        /// The library or executable probed.
        object: String,
    },
    /// A blind spot.
    NotVisible {
        #[serde(flatten)]
        reason: NotVisibleReason,
    },
}

impl TlsCoverage {
    pub fn is_seen(&self) -> bool {
        matches!(self, TlsCoverage::Seen { .. })
    }

    /// `seen via OpenSSL symbols (/usr/lib/.../libssl.so.3)` or
    /// `plaintext not visible: TLS stack not recognised`.
    pub fn describe(&self) -> String {
        match self {
            TlsCoverage::Seen { method, object } => {
                format!("seen via {} ({object})", method.describe())
            }
            TlsCoverage::NotVisible { reason } => {
                format!("plaintext not visible: {}", reason.describe())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_form_is_flat_and_round_trips() {
        let seen = TlsCoverage::Seen {
            method: PlaintextMethod::OpensslSymbols,
            object: "/usr/lib/libssl.so.3".into(),
        };
        assert_eq!(
            serde_json::to_value(&seen).unwrap(),
            serde_json::json!({"plaintext": "seen", "method": "openssl_symbols",
                               "object": "/usr/lib/libssl.so.3"})
        );
        let blind = TlsCoverage::NotVisible {
            reason: NotVisibleReason::AttachFailed {
                detail: "EPERM".into(),
            },
        };
        assert_eq!(
            serde_json::to_value(&blind).unwrap(),
            serde_json::json!({"plaintext": "not_visible", "why": "attach_failed",
                               "detail": "EPERM"})
        );
        for coverage in [seen, blind] {
            let json = serde_json::to_string(&coverage).unwrap();
            assert_eq!(
                serde_json::from_str::<TlsCoverage>(&json).unwrap(),
                coverage
            );
        }
        assert_eq!(
            TlsCoverage::NotVisible {
                reason: NotVisibleReason::StackNotRecognised
            }
            .describe(),
            "plaintext not visible: TLS stack not recognised"
        );
    }
}
