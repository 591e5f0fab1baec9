//! DNS query names from captured UDP payloads (port 53), parsed with `simple-dns`.

/// Names asked in a DNS message; empty when the bytes are not a DNS message.
pub fn query_names(datagram: &[u8]) -> Vec<String> {
    match simple_dns::Packet::parse(datagram) {
        Ok(packet) => packet
            .questions
            .iter()
            .map(|q| q.qname.to_string())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str) -> Vec<u8> {
        let mut packet = simple_dns::Packet::new_query(0x1234);
        packet.questions.push(simple_dns::Question::new(
            simple_dns::Name::new_unchecked(name),
            simple_dns::QTYPE::TYPE(simple_dns::TYPE::A),
            simple_dns::QCLASS::CLASS(simple_dns::CLASS::IN),
            false,
        ));
        packet.build_bytes_vec().unwrap()
    }

    #[test]
    fn parses_query_name() {
        assert_eq!(
            query_names(&query("api.openai.com")),
            vec!["api.openai.com"]
        );
    }

    #[test]
    fn garbage_and_truncation_give_nothing() {
        let q = query("api.anthropic.com");
        for cut in 0..q.len() {
            let _ = query_names(&q[..cut]);
        }
        assert!(query_names(b"\x00\x01garbage").is_empty());
    }
}
