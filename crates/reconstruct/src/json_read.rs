//! Reading parsed JSON, from either tree: `serde_json::Value` or the tree read in place,
//! [`BorrowedJson`].
//!
//! Parsed into `serde_json::Value` trees, every key and string of a document becomes its own
//! allocation and every object a map. A streamed chat completion is a few hundred SSE chunks of
//! a few hundred bytes each: in a replay of the recorded mix, parsing and dropping the OpenAI
//! chat chunks took 6.4 % of all instructions, about 7,000 for each chunk, and request bodies
//! (the whole conversation, every time) 9 %. A [`serde_json_borrow::Value`] borrows its strings
//! from the text (copying only those with escapes) and keeps an object as one vector. Readers
//! move to it one at a time; [`JsonRead`] is what they ask of a tree, so the helpers they share
//! (message text, fingerprints) serve both.
//!
//! Both trees answer alike for the same text: of duplicate keys the last counts (a `serde_json`
//! map keeps the last one inserted, where `serde_json_borrow`'s own `get` returns the first),
//! and numbers are told apart as `serde_json` does (non-negative integers, negative ones,
//! floats).

use serde_json::Value;
pub(crate) use serde_json_borrow::Value as BorrowedJson;

/// `bytes` parsed as JSON into `T`, `None` when they are not JSON: what
/// `serde_json::from_slice(bytes).ok()` gives. The text's UTF-8 is checked once, in one pass,
/// where `from_slice` checks each string it reads on its own (a request body holds hundreds:
/// those checks were 3 % of a replay's instructions); text that is not UTF-8 is not JSON
/// either way.
pub(crate) fn parse<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Option<T> {
    serde_json::from_str(std::str::from_utf8(bytes).ok()?).ok()
}

/// What a JSON value is, for readers that walk all of it (fingerprints).
pub(crate) enum Shape<'v, J> {
    Null,
    Bool(bool),
    /// A non-negative integer.
    Unsigned(u64),
    /// A negative integer.
    Signed(i64),
    Float(f64),
    Text(&'v str),
    Array(&'v [J]),
    Object,
}

/// What the readers of JSON bodies ask of a parsed value. A tree answers [`JsonRead::field`],
/// [`JsonRead::shape`] and [`JsonRead::fields_by_key`]; the rest follows from its shape.
pub(crate) trait JsonRead: Sized {
    /// The field `key` of an object (the last, of duplicates); `None` for anything else.
    fn field(&self, key: &str) -> Option<&Self>;
    fn shape(&self) -> Shape<'_, Self>;
    /// An object's fields sorted by key, one per key (the last, of duplicates); empty for
    /// anything else.
    fn fields_by_key(&self) -> Vec<(&str, &Self)>;
    /// The value written as compact JSON, as `serde_json` writes the `Value` of the same text
    /// (object keys sorted, one per key).
    fn compact_json(&self) -> String;

    /// The value as a string slice when it is a string.
    fn text(&self) -> Option<&str> {
        match self.shape() {
            Shape::Text(text) => Some(text),
            _ => None,
        }
    }

    /// The elements of an array.
    fn items(&self) -> Option<&[Self]> {
        match self.shape() {
            Shape::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The value when it is a non-negative integer.
    fn count(&self) -> Option<u64> {
        match self.shape() {
            Shape::Unsigned(n) => Some(n),
            _ => None,
        }
    }

    /// The value when it is `true` or `false`.
    fn flag(&self) -> Option<bool> {
        match self.shape() {
            Shape::Bool(b) => Some(b),
            _ => None,
        }
    }
}

impl JsonRead for Value {
    fn field(&self, key: &str) -> Option<&Self> {
        self.get(key)
    }

    fn shape(&self) -> Shape<'_, Self> {
        match self {
            Value::Null => Shape::Null,
            Value::Bool(b) => Shape::Bool(*b),
            Value::Number(n) => number_shape(n.as_u64(), n.as_i64(), n.as_f64()),
            Value::String(s) => Shape::Text(s),
            Value::Array(items) => Shape::Array(items),
            Value::Object(_) => Shape::Object,
        }
    }

    fn fields_by_key(&self) -> Vec<(&str, &Self)> {
        let mut fields: Vec<(&str, &Self)> = self
            .as_object()
            .map(|map| map.iter().map(|(k, v)| (k.as_str(), v)).collect())
            .unwrap_or_default();
        // A serde_json map has one value per key and is sorted already, unless some crate
        // in the build turns on its `preserve_order` feature (then in the text's order).
        fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
        fields
    }

    fn compact_json(&self) -> String {
        self.to_string()
    }
}

impl JsonRead for BorrowedJson<'_> {
    fn field(&self, key: &str) -> Option<&Self> {
        self.as_object()?
            .as_vec()
            .iter()
            .rev()
            .find_map(|(name, field)| (&**name == key).then_some(field))
    }

    fn shape(&self) -> Shape<'_, Self> {
        match self {
            BorrowedJson::Null => Shape::Null,
            BorrowedJson::Bool(b) => Shape::Bool(*b),
            BorrowedJson::Number(n) => number_shape(n.as_u64(), n.as_i64(), n.as_f64()),
            BorrowedJson::Str(s) => Shape::Text(s),
            BorrowedJson::Array(items) => Shape::Array(items),
            BorrowedJson::Object(_) => Shape::Object,
        }
    }

    fn fields_by_key(&self) -> Vec<(&str, &Self)> {
        let Some(object) = self.as_object() else {
            return Vec::new();
        };
        let mut fields: Vec<(&str, &Self)> =
            object.as_vec().iter().map(|(k, v)| (&**k, v)).collect();
        // Stable: of equal keys the last in the text stays last, and is the one kept.
        fields.sort_by(|a, b| a.0.cmp(b.0));
        let mut kept: Vec<(&str, &Self)> = Vec::with_capacity(fields.len());
        for field in fields {
            match kept.last_mut() {
                Some(last) if last.0 == field.0 => *last = field,
                _ => kept.push(field),
            }
        }
        kept
    }

    fn compact_json(&self) -> String {
        // Through the `Value`, for its key order: this tree keeps the text's.
        Value::from(self).to_string()
    }
}

/// A number's shape as `serde_json` tells them apart.
fn number_shape<'v, J>(
    unsigned: Option<u64>,
    signed: Option<i64>,
    float: Option<f64>,
) -> Shape<'v, J> {
    match (unsigned, signed) {
        (Some(n), _) => Shape::Unsigned(n),
        (None, Some(n)) => Shape::Signed(n),
        (None, None) => Shape::Float(float.unwrap_or(0.0)),
    }
}

/// `value` as a string slice when it is a non-empty string.
pub(crate) fn non_empty_text<J: JsonRead>(value: Option<&J>) -> Option<&str> {
    value.and_then(J::text).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `parse` accepts and refuses what `serde_json::from_slice` does: bytes that are not
    /// UTF-8 inside a string or outside one, trailing text, escapes, non-ASCII text.
    #[test]
    fn parse_reads_what_from_slice_reads() {
        let cases: [&[u8]; 9] = [
            br#"{"a":"x\ny \u00e9","b":[1,2.5,-3,null,true]}"#,
            "{\"k\":\"caf\u{e9} \u{1F600}\"}".as_bytes(),
            b"{\"k\":\"\xff\xfe\"}",
            b"[1, 2]\xff",
            b"{\"a\":1} trailing",
            b"  {\"a\": 1}\n",
            b"",
            b"name=value",
            b"{\"cut\": [1, 2",
        ];
        for case in cases {
            assert_eq!(
                parse::<Value>(case),
                serde_json::from_slice::<Value>(case).ok(),
                "{}",
                String::from_utf8_lossy(case)
            );
            assert_eq!(
                parse::<BorrowedJson>(case).map(|v| Value::from(&v)),
                serde_json::from_slice::<BorrowedJson>(case)
                    .ok()
                    .map(|v| Value::from(&v)),
            );
        }
    }

    /// The same text read into both trees answers alike, duplicates and escapes included.
    #[test]
    fn both_trees_read_alike() {
        let text = r#"{"id":"a","id":"b","n":7,"m":-3,"f":2.5,"s":"tab\tand \u00e9","o":{"z":1,"k":[1,"x"],"z":2},"e":""}"#;
        let borrowed: BorrowedJson = serde_json::from_str(text).unwrap();
        let owned: Value = serde_json::from_str(text).unwrap();
        for key in ["id", "n", "m", "f", "s", "o", "e", "missing"] {
            assert_eq!(
                borrowed.field(key).map(Value::from),
                owned.field(key).cloned(),
                "{key}"
            );
            assert_eq!(
                borrowed.field(key).and_then(JsonRead::count),
                owned.field(key).and_then(JsonRead::count),
                "{key}"
            );
        }
        assert_eq!(non_empty_text(borrowed.field("id")), Some("b"));
        assert_eq!(non_empty_text(borrowed.field("e")), None);
        assert_eq!(non_empty_text(borrowed.field("n")), None);
        assert_eq!(
            borrowed.field("s").and_then(|s| s.field("k")),
            None,
            "not an object"
        );
        let borrowed_fields: Vec<(&str, Value)> = borrowed
            .fields_by_key()
            .into_iter()
            .map(|(k, v)| (k, Value::from(v)))
            .collect();
        let owned_fields: Vec<(&str, Value)> = owned
            .fields_by_key()
            .into_iter()
            .map(|(k, v)| (k, v.clone()))
            .collect();
        assert_eq!(
            borrowed_fields, owned_fields,
            "sorted, the last of duplicates"
        );
        assert_eq!(borrowed_fields.first().map(|(k, _)| *k), Some("e"));
        assert_eq!(Value::from(&borrowed), owned);
        assert_eq!(borrowed.compact_json(), owned.compact_json());
        assert_eq!(
            borrowed.field("o").map(JsonRead::compact_json).as_deref(),
            Some(r#"{"k":[1,"x"],"z":2}"#)
        );
    }
}
