//! DNS names of the network policies, from userspace (issue 17): each governed agent's names
//! written into `DNS_NAMES` in wire form, for `collector-ebpf/src/enforce_dns.rs`, which allows
//! the addresses the agent's answers for them return, with an expiry the kernel checks itself;
//! and the expired ones taken out again (so each name gets its places under the per-name cap
//! back, and the map does not fill).

use std::collections::HashMap;

use agentscope_common::{
    enforce_dns::NAME_LEN, DnsAllowKey, DnsAllowValue, DnsNameKey, DnsNameState,
};
use aya::maps::HashMap as BpfHashMap;

use crate::enforcement::GovernedAgent;
use crate::error::CollectorError;
use crate::kernel::KernelCapture;

/// `name` in DNS wire form (length-prefixed labels, lower case, a final zero), or `None` when
/// it is not a name that fits ([`NAME_LEN`] bytes, labels of 1 to 63 bytes).
pub fn wire_name(name: &str) -> Option<[u8; NAME_LEN]> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut wire = [0u8; NAME_LEN];
    let mut at = 0;
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 || at + 1 + label.len() >= NAME_LEN {
            return None;
        }
        wire[at] = label.len() as u8;
        for (i, b) in label.bytes().enumerate() {
            wire[at + 1 + i] = b.to_ascii_lowercase();
        }
        at += 1 + label.len();
    }
    Some(wire)
}

fn map_error(name: &str, e: &dyn std::fmt::Display) -> CollectorError {
    CollectorError::Enforcement(format!("map {name}: {e}"))
}

impl KernelCapture {
    /// Writes each agent's DNS names (numbered in order from 1; a name that cannot be a DNS
    /// name is left out: no answer could match it).
    pub(crate) fn write_dns_names(
        &mut self,
        agents: &[GovernedAgent],
    ) -> Result<(), CollectorError> {
        let mut names: BpfHashMap<_, DnsNameKey, DnsNameState> = BpfHashMap::try_from(
            self.ebpf_mut()
                .map_mut("DNS_NAMES")
                .ok_or_else(|| map_error("DNS_NAMES", &"missing"))?,
        )
        .map_err(|e| map_error("DNS_NAMES", &e))?;
        let mut id = 0;
        for agent in agents {
            for name in &agent.names {
                let Some(wire) = wire_name(name) else {
                    continue;
                };
                id += 1;
                let key = DnsNameKey {
                    agent: agent.id,
                    _pad: 0,
                    name: wire,
                };
                names
                    .insert(key, DnsNameState { id, addresses: 0 }, 0)
                    .map_err(|e| map_error("DNS_NAMES", &e))?;
            }
        }
        Ok(())
    }

    /// Removes the answered addresses whose time is up (the kernel no longer allows them) and
    /// gives their names the places back. Returns how many were removed.
    pub fn expire_dns_answers(&mut self) -> usize {
        let now = crate::collector::clock_ns(libc::CLOCK_BOOTTIME);
        let expired: Vec<(DnsAllowKey, u32)> = {
            let Some(map) = self.ebpf_mut().map("DNS_ALLOW") else {
                return 0;
            };
            let Ok(allow) = BpfHashMap::<_, DnsAllowKey, DnsAllowValue>::try_from(map) else {
                return 0;
            };
            allow
                .iter()
                .flatten()
                .filter(|(_, value)| value.expires_ns <= now)
                .map(|(key, value)| (key, value.name_id))
                .collect()
        };
        if expired.is_empty() {
            return 0;
        }
        if let Some(map) = self.ebpf_mut().map_mut("DNS_ALLOW") {
            if let Ok(mut allow) = BpfHashMap::<_, DnsAllowKey, DnsAllowValue>::try_from(map) {
                for (key, _) in &expired {
                    let _ = allow.remove(key);
                }
            }
        }
        let mut freed: HashMap<u32, u32> = HashMap::new();
        for (_, id) in &expired {
            *freed.entry(*id).or_default() += 1;
        }
        if let Some(map) = self.ebpf_mut().map_mut("DNS_NAMES") {
            if let Ok(mut names) = BpfHashMap::<_, DnsNameKey, DnsNameState>::try_from(map) {
                let states: Vec<(DnsNameKey, DnsNameState)> = names.iter().flatten().collect();
                for (key, state) in states {
                    if let Some(count) = freed.get(&state.id) {
                        let state = DnsNameState {
                            id: state.id,
                            addresses: state.addresses.saturating_sub(*count),
                        };
                        let _ = names.insert(key, state, 0);
                    }
                }
            }
        }
        expired.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_written_as_labels_in_lower_case() {
        let wire = wire_name("API.OpenAI.com.").unwrap();
        assert_eq!(&wire[..16], b"\x03api\x06openai\x03com\x00");
        assert!(wire[16..].iter().all(|&b| b == 0));
    }

    #[test]
    fn what_cannot_be_a_dns_name_is_refused() {
        assert!(wire_name("a..b").is_none());
        assert!(wire_name(&"x".repeat(64)).is_none());
        assert!(wire_name(&["abcdefghij"; 12].join(".")).is_none());
        assert!(wire_name("").is_none());
    }
}
