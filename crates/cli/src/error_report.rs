//! How a failed command says why, on standard error: one line, `agentscope: ` and the message
//! with its causes, each cause once (an I/O error wrapped with context often repeats its
//! source's text), without raw control characters (messages quote paths and names the traced
//! processes chose), and a hint line where there is something to try.

use agentscope_kernel::CollectorError;

/// The report of `err`, ready for standard error.
pub fn describe(err: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        // "cannot read x: No such file (os error 2)" caused by "No such file (os error 2)":
        // the cause is already said.
        if text.is_empty() || message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    let mut report = format!(
        "agentscope: {}",
        agentscope_console::control_chars::escape_controls_keeping_lines(&message)
    );
    if let Some(hint) = hint(err) {
        report.push_str("\n  hint: ");
        report.push_str(hint);
    }
    report
}

fn hint(err: &anyhow::Error) -> Option<&'static str> {
    // The collector's own errors name their fix; where the kernel refused something, what it
    // offers is worth a look.
    let kernel_refused = err.chain().any(|c| {
        matches!(
            c.downcast_ref::<CollectorError>(),
            Some(CollectorError::Load(_) | CollectorError::MissingFeature { .. })
        )
    });
    if kernel_refused {
        return Some("`agentscope --version` shows what this node's kernel offers the collector");
    }
    if err
        .chain()
        .any(|c| c.downcast_ref::<CollectorError>().is_some())
    {
        return None;
    }
    let io_kind = err
        .chain()
        .find_map(|c| c.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind);
    match io_kind {
        Some(std::io::ErrorKind::PermissionDenied) => {
            Some("run as root, or as a privileged pod (kubectl debug node/NODE --profile=sysadmin)")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let text = io.to_string();
        // A context that already quotes its source, as `format!("cannot read x: {err}")` does.
        let err = Err::<(), _>(io)
            .context(format!("cannot read /x: {text}"))
            .unwrap_err();
        assert_eq!(
            describe(&err),
            format!("agentscope: cannot read /x: {text}")
        );
        // A context that does not: the cause follows once.
        let err = Err::<(), _>(std::io::Error::from(std::io::ErrorKind::NotFound))
            .context("cannot read /x")
            .unwrap_err();
        assert_eq!(
            describe(&err),
            format!("agentscope: cannot read /x: {text}")
        );
    }

    #[test]
    fn the_collector_s_errors_say_their_fix_once_and_kernel_refusals_get_a_hint() {
        let report = describe(&anyhow::Error::from(CollectorError::NotPrivileged));
        assert!(!report.contains("agentscope: agentscope"), "{report}");
        assert_eq!(
            report.lines().count(),
            1,
            "its message holds the fix: {report}"
        );
        let report = describe(&anyhow::Error::from(CollectorError::Load("EPERM".into())));
        assert!(
            report.contains("\n  hint: `agentscope --version`"),
            "{report}"
        );
    }
}
