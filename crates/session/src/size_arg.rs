//! Sizes on the command line (`--memory-budget 64M`, `--rotate-size 2G`): one parser, so every
//! size flag accepts the same units and rejects the same mistakes.

/// `1048576`, `512K`, `100M`, `2G` (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, ""), |at| text.split_at(at));
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("\"{text}\" is not a size (examples: 500M, 2G)"))?;
    let shift = match unit
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => {
            return Err(format!(
                "unknown size unit in \"{text}\" (use K, M, G or T)"
            ))
        }
    };
    number
        .checked_mul(1u64 << shift)
        .filter(|&n| n >= 64 << 10)
        .ok_or_else(|| format!("\"{text}\" is out of range (at least 64K)"))
}
