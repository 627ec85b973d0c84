//! A small JSON reader for everything the page reads: the bridge's messages, events and
//! endpoint specs, and saved recordings.
//!
//! Why not serde here: serde's derived readers are generic code, instantiated once per type
//! and per field; in the WebAssembly page they were about 45 KB of the 240 KB it shipped
//! gzipped (the budget is 200, docs/benchmarks.md). This is one parser into a borrowed tree ([`Json`]) and plain
//! field reads ([`FromJson`], [`Fields`]). Native code keeps using serde: [`Json`] implements
//! `Deserialize`, and [`via_json!`](crate::via_json) gives each type read here a `Deserialize`
//! that goes through its [`FromJson`], so every type has exactly one reader, whichever side
//! reads it.
//!
//! The grammar is RFC 8259's, checked as strictly as `serde_json` checks it (the fuzzer
//! compares the two on arbitrary input); strings without escapes are borrowed, not copied.

use std::borrow::Cow;

/// How deep arrays and objects may nest, like `serde_json`'s limit: a hostile recording or
/// message cannot exhaust the stack.
pub const MAX_DEPTH: usize = 128;

/// A JSON value. Strings without escapes borrow from the text they were read from.
#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    /// An integer that is not negative.
    U64(u64),
    /// A negative integer.
    I64(i64),
    /// A number with a fraction or an exponent, or an integer beyond 64 bits, as written: it is
    /// read as an `f64` only if a field wants one. The protocol's numbers are all integers, so
    /// the page carries no float-parsing code.
    Float(Cow<'a, str>),
    Str(Cow<'a, str>),
    Arr(Vec<Json<'a>>),
    /// Members in the order written (duplicates are kept; the first is the one read).
    Obj(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl Json<'_> {
    /// What kind of value this is, for errors ("expected a string, found an array").
    fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::U64(_) | Json::I64(_) | Json::Float(_) => "a number",
            Json::Str(_) => "a string",
            Json::Arr(_) => "an array",
            Json::Obj(_) => "an object",
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn mismatch(&self, what: &str) -> String {
        format!("expected {what}, found {}", self.kind())
    }

    fn expected<T>(&self, what: &str) -> Result<T, String> {
        Err(self.mismatch(what))
    }
}

/// Reads `text` as one JSON value (whitespace around it allowed, nothing else).
pub fn parse(text: &str) -> Result<Json<'_>, String> {
    let mut parser = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        depth: 0,
    };
    let value = parser.value()?;
    parser.blank();
    if parser.pos != text.len() {
        return Err(parser.error("trailing characters"));
    }
    Ok(value)
}

/// Reads `text` as a `T`: the page's one way in, for messages and recordings alike.
pub fn from_str<T: FromJson>(text: &str) -> Result<T, String> {
    T::from_json(parse(text)?)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn error(&self, what: &str) -> String {
        format!("{what} at byte {}", self.pos)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn blank(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Skips blanks, then takes `byte` if it is next.
    fn eat(&mut self, byte: u8) -> bool {
        self.blank();
        let next = self.peek() == Some(byte);
        self.pos += usize::from(next);
        next
    }

    fn value(&mut self) -> Result<Json<'a>, String> {
        self.blank();
        match self.peek() {
            None => Err(self.error("unexpected end of input")),
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string().map(Json::Str),
            Some(b't') => self.word("true", Json::Bool(true)),
            Some(b'f') => self.word("false", Json::Bool(false)),
            Some(b'n') => self.word("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expected a value")),
        }
    }

    fn word(&mut self, word: &str, value: Json<'a>) -> Result<Json<'a>, String> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error("expected a value"))
        }
    }

    /// Steps into an array or object (past its opening bracket), within [`MAX_DEPTH`].
    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        self.pos += 1;
        Ok(())
    }

    fn array(&mut self) -> Result<Json<'a>, String> {
        self.enter()?;
        let mut items = Vec::new();
        if !self.eat(b']') {
            loop {
                items.push(self.value()?);
                if self.eat(b',') {
                    continue;
                }
                if self.eat(b']') {
                    break;
                }
                return Err(self.error("expected `,` or `]`"));
            }
        }
        self.depth -= 1;
        Ok(Json::Arr(items))
    }

    fn object(&mut self) -> Result<Json<'a>, String> {
        self.enter()?;
        let mut members = Vec::new();
        if !self.eat(b'}') {
            loop {
                self.blank();
                if self.peek() != Some(b'"') {
                    return Err(self.error("expected a key"));
                }
                let key = self.string()?;
                if !self.eat(b':') {
                    return Err(self.error("expected `:`"));
                }
                members.push((key, self.value()?));
                if self.eat(b',') {
                    continue;
                }
                if self.eat(b'}') {
                    break;
                }
                return Err(self.error("expected `,` or `}`"));
            }
        }
        self.depth -= 1;
        Ok(Json::Obj(members))
    }

    /// Moves past plain characters (not a quote, a backslash or a control character). Every
    /// byte of a multi-byte UTF-8 character is 0x80 or more, so positions stay on character
    /// boundaries.
    fn plain_run(&mut self) {
        while let Some(byte) = self.peek() {
            if byte == b'"' || byte == b'\\' || byte < 0x20 {
                break;
            }
            self.pos += 1;
        }
    }

    fn string(&mut self) -> Result<Cow<'a, str>, String> {
        self.pos += 1;
        let start = self.pos;
        self.plain_run();
        if self.peek() == Some(b'"') {
            self.pos += 1;
            return Ok(Cow::Borrowed(&self.text[start..self.pos - 1]));
        }
        let mut out = String::from(&self.text[start..self.pos]);
        loop {
            match self.peek() {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let escaped = self.peek();
                    self.pos += 1;
                    out.push(match escaped {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => self.unicode()?,
                        _ => return Err(self.error("invalid escape")),
                    });
                }
                Some(byte) if byte < 0x20 => {
                    return Err(self.error("control character in a string"));
                }
                Some(_) => {
                    let run = self.pos;
                    self.plain_run();
                    out.push_str(&self.text[run..self.pos]);
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self.text.get(self.pos..self.pos + 4).unwrap_or("");
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.error("invalid \\u escape"));
        }
        self.pos += 4;
        u32::from_str_radix(digits, 16).map_err(|_| self.error("invalid \\u escape"))
    }

    /// The character of a `\u` escape (the `\u` already read), joining a surrogate pair.
    fn unicode(&mut self) -> Result<char, String> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if !self.text[self.pos..].starts_with("\\u") {
                    return Err(self.error("lone leading surrogate"));
                }
                self.pos += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(self.error("invalid trailing surrogate"));
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.error("lone trailing surrogate")),
            code => code,
        };
        char::from_u32(code).ok_or_else(|| self.error("invalid \\u escape"))
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Json<'a>, String> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        self.pos += usize::from(negative);
        let int_start = self.pos;
        let int_digits = self.digits();
        if int_digits == 0 || (int_digits > 1 && self.bytes[int_start] == b'0') {
            return Err(self.error("invalid number"));
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            integer = false;
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            integer = false;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        let text = &self.text[start..self.pos];
        if integer {
            // Like serde_json: -0 and integers beyond 64 bits are floats.
            if negative {
                if let Ok(n) = text.parse::<i64>() {
                    if n != 0 {
                        return Ok(Json::I64(n));
                    }
                }
            } else if let Ok(n) = text.parse::<u64>() {
                return Ok(Json::U64(n));
            }
        }
        Ok(Json::Float(Cow::Borrowed(text)))
    }
}

/// A type read from a [`Json`] value. Owned results: strings the value borrowed are copied
/// only for the fields kept.
pub trait FromJson: Sized {
    fn from_json(value: Json<'_>) -> Result<Self, String>;
}

/// The members of an object, taken one by one by name. Unknown members are ignored, and a
/// member that is `null` counts as missing, as with serde's `Option` fields.
pub struct Fields<'a>(Vec<(Cow<'a, str>, Json<'a>)>);

impl<'a> Fields<'a> {
    pub fn of(value: Json<'a>) -> Result<Fields<'a>, String> {
        match value {
            Json::Obj(members) => Ok(Fields(members)),
            other => other.expected("an object"),
        }
    }

    /// The member `name`, if there is one and it is not null.
    pub fn take(&mut self, name: &str) -> Option<Json<'a>> {
        let at = self.0.iter().position(|(key, _)| key == name)?;
        match std::mem::replace(&mut self.0[at].1, Json::Null) {
            Json::Null => None,
            value => Some(value),
        }
    }

    /// The member `name`, which must be there.
    pub fn req<T: FromJson>(&mut self, name: &str) -> Result<T, String> {
        match self.take(name) {
            Some(value) => T::from_json(value).map_err(|e| within(name, e)),
            None => Err(missing(name)),
        }
    }

    /// The member `name`, or `None`.
    pub fn opt<T: FromJson>(&mut self, name: &str) -> Result<Option<T>, String> {
        match self.take(name) {
            Some(value) => T::from_json(value).map(Some).map_err(|e| within(name, e)),
            None => Ok(None),
        }
    }

    /// The tag naming a variant (`kind`, `type`), borrowed from the text: read for every event,
    /// so it is not copied.
    pub fn tag(&mut self, name: &str) -> Result<Cow<'a, str>, String> {
        match self.take(name) {
            Some(Json::Str(tag)) => Ok(tag),
            Some(other) => Err(within(name, other.mismatch("a string"))),
            None => Err(missing(name)),
        }
    }

    /// The member `name`, or `default()` when it is missing.
    pub fn or<T: FromJson>(
        &mut self,
        name: &str,
        default: impl FnOnce() -> T,
    ) -> Result<T, String> {
        Ok(self.opt(name)?.unwrap_or_else(default))
    }
}

// Errors are formatted out of line: the readers above are instantiated once per field type, and
// the page carries each instance.
#[cold]
#[inline(never)]
fn missing(name: &str) -> String {
    format!("needs `{name}`")
}

#[cold]
#[inline(never)]
fn within(name: &str, error: String) -> String {
    format!("`{name}`: {error}")
}

impl FromJson for u64 {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        match value {
            Json::U64(n) => Ok(n),
            other => other.expected("an integer of 0 or more"),
        }
    }
}

impl FromJson for i64 {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        match value {
            Json::U64(n) => i64::try_from(n).map_err(|_| "integer out of range".into()),
            Json::I64(n) => Ok(n),
            other => other.expected("an integer"),
        }
    }
}

/// Narrower integers: read as 64 bits, then range-checked.
macro_rules! narrow_ints {
    ($wide:ty => $($t:ty),*) => {$(
        impl FromJson for $t {
            fn from_json(value: Json<'_>) -> Result<Self, String> {
                <$t>::try_from(<$wide>::from_json(value)?)
                    .map_err(|_| format!("integer out of range for {}", stringify!($t)))
            }
        }
    )*};
}
narrow_ints!(u64 => u32, u16, u8, usize);
narrow_ints!(i64 => i32);

impl FromJson for f64 {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        match value {
            Json::U64(n) => Ok(n as f64),
            Json::I64(n) => Ok(n as f64),
            Json::Float(text) => match text.parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(n),
                _ => Err(format!("{text} is out of range")),
            },
            other => other.expected("a number"),
        }
    }
}

impl FromJson for bool {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        match value {
            Json::Bool(b) => Ok(b),
            other => other.expected("true or false"),
        }
    }
}

impl FromJson for String {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        match value {
            Json::Str(s) => Ok(s.into_owned()),
            other => other.expected("a string"),
        }
    }
}

/// A plain loop, not `collect()`: each element type instantiates this, and the page carries
/// every instance (collecting into a `Result` brought an iterator adapter of several KB each).
impl<T: FromJson> FromJson for Vec<T> {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        let Json::Arr(items) = value else {
            return value.expected("an array");
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            match T::from_json(item) {
                Ok(v) => out.push(v),
                Err(e) => return Err(at_index(i, e)),
            }
        }
        Ok(out)
    }
}

#[cold]
#[inline(never)]
fn at_index(i: usize, error: String) -> String {
    format!("[{i}]: {error}")
}

impl<T: FromJson> FromJson for Option<T> {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        match value {
            Json::Null => Ok(None),
            value => T::from_json(value).map(Some),
        }
    }
}

impl<T: FromJson> FromJson for Box<T> {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        T::from_json(value).map(Box::new)
    }
}

/// Reads an enum written as a plain string (serde's unit variants, `snake_case`).
#[macro_export]
#[doc(hidden)]
macro_rules! json_names {
    ($ty:ty { $($name:literal => $variant:expr),* $(,)? }) => {
        impl $ty {
            /// The name the protocol gives this value (the writer's side of the same table).
            #[allow(dead_code)]
            pub(crate) fn json_name(&self) -> &'static str {
                $(if *self == $variant {
                    return $name;
                })*
                ""
            }
        }
        impl $crate::json::FromJson for $ty {
            fn from_json(value: $crate::json::Json<'_>) -> Result<Self, String> {
                match value {
                    $($crate::json::Json::Str(name) if name == $name => Ok($variant),)*
                    $crate::json::Json::Str(other) => {
                        Err(format!("unknown {} `{other}`", stringify!($ty)))
                    }
                    other => Err(other.mismatch("a string")),
                }
            }
        }
    };
}

/// Gives each type a serde `Deserialize` that reads a [`Json`] tree and then the type's
/// [`FromJson`]: native code (the bridge's command reader, tests, viewers) reads these types
/// with the same code as the page.
#[macro_export]
#[doc(hidden)]
macro_rules! via_json {
    ($($ty:ty),* $(,)?) => {$(
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = <$crate::json::Json<'de> as serde::Deserialize>::deserialize(deserializer)?;
                <$ty as $crate::json::FromJson>::from_json(value)
                    .map_err(<D::Error as serde::de::Error>::custom)
            }
        }
    )*};
}

impl<'de> serde::Deserialize<'de> for Json<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TreeVisitor)
    }
}

/// Builds a [`Json`] tree from any serde deserializer (serde_json's, or serde's buffered
/// content inside a tagged command).
struct TreeVisitor;

impl<'de> serde::de::Visitor<'de> for TreeVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json<'de>, E> {
        Ok(u64::try_from(v).map_or(Json::I64(v), Json::U64))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json<'de>, E> {
        Ok(Json::U64(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Json<'de>, E> {
        // Display writes the shortest text that reads back as the same f64.
        Ok(Json::Float(Cow::Owned(v.to_string())))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Json<'de>, D::Error> {
        serde::Deserialize::deserialize(d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Arr(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut members = Vec::new();
        while let Some(key) = map.next_key::<Json<'de>>()? {
            let Json::Str(key) = key else {
                return Err(serde::de::Error::custom("an object key must be a string"));
            };
            members.push((key, map.next_value()?));
        }
        Ok(Json::Obj(members))
    }
}

/// For the fuzzer and the tests: whether two trees hold the same values, numbers compared by
/// value (`1e3` is `1000.0`; floats within a rounding error, as serde_json's fast float
/// reading may be one unit off in the last place).
#[doc(hidden)]
pub fn same(a: &Json<'_>, b: &Json<'_>) -> bool {
    match (a, b) {
        (Json::Float(_), _) | (_, Json::Float(_)) => {
            let (x, y) = (
                f64::from_json(a.clone()).ok(),
                f64::from_json(b.clone()).ok(),
            );
            match (x, y) {
                (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-15 * x.abs().max(y.abs()),
                _ => false,
            }
        }
        (Json::Arr(x), Json::Arr(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Json::Obj(x), Json::Obj(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
        }
        _ => a == b,
    }
}

/// For the fuzzer and its kept inputs: this reader and serde_json must accept the same texts
/// as the same trees. They may differ only where the rules differ on purpose: a float too big
/// for f64 is refused here when it is read, not while parsing, and the depth limits count
/// differently by one level. Panics on any other difference.
#[doc(hidden)]
pub fn check_against_serde_json(text: &str) {
    let mine = parse(text);
    let theirs = serde_json::from_str::<Json>(text);
    match (&mine, &theirs) {
        (Ok(a), Ok(b)) => assert!(same(a, b), "{text:?}: {a:?} but serde_json {b:?}"),
        (Ok(_), Err(e)) => {
            let e = e.to_string();
            assert!(
                e.contains("number out of range") || e.contains("recursion limit"),
                "{text:?} read here, but serde_json says {e}"
            );
        }
        (Err(e), Ok(_)) => assert!(
            e.contains("nested too deeply"),
            "{text:?} read by serde_json, but here: {e}"
        ),
        (Err(_), Err(_)) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(text: &str) -> (Result<Json<'_>, String>, Result<Json<'_>, String>) {
        (
            parse(text),
            serde_json::from_str::<Json>(text).map_err(|e| e.to_string()),
        )
    }

    #[test]
    fn reads_what_serde_json_reads() {
        for text in [
            r#"{"a":[1,-2,3.5,1e3,true,false,null,"x"],"b":{}}"#,
            " [ ] ",
            r#""tab\there \"quoted\" \\ \/ \u00e9 \ud83d\ude00 é""#,
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-0",
            "0.0",
            "-1.5E-3",
            r#"{"dup":1,"dup":2}"#,
        ] {
            let (mine, theirs) = both(text);
            assert!(same(&mine.unwrap(), &theirs.unwrap()), "{text}");
            check_against_serde_json(text);
        }
    }

    #[test]
    fn refuses_what_serde_json_refuses() {
        for text in [
            "",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "[1,]",
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            "{1:2}",
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ud800\u0041""#,
            r#""\x""#,
            "\"a\u{1}b\"",
            r#""unterminated"#,
            "tru",
            "nulls",
            "[1] 2",
            "'a'",
        ] {
            let (mine, theirs) = both(text);
            assert!(theirs.is_err(), "serde_json read {text:?}");
            assert!(mine.is_err(), "read {text:?} as {mine:?}");
            check_against_serde_json(text);
        }
    }

    #[test]
    fn floats_are_read_when_wanted() {
        assert_eq!(from_str::<f64>("-1.5E-3"), Ok(-0.0015));
        assert_eq!(from_str::<f64>("7"), Ok(7.0));
        // serde_json refuses this while parsing; here, when the number is read.
        assert!(serde_json::from_str::<Json>("1e999").is_err());
        assert_eq!(
            from_str::<f64>("1e999").unwrap_err(),
            "1e999 is out of range"
        );
        assert!(from_str::<u64>("1.0").is_err());
    }

    #[test]
    fn depth_is_bounded_without_overflowing_the_stack() {
        let deep = "[".repeat(100_000);
        assert!(parse(&deep).unwrap_err().contains("nested too deeply"));
        let fine = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&fine).is_ok());
        for depth in [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1] {
            check_against_serde_json(&format!("{}{}", "[".repeat(depth), "]".repeat(depth)));
        }
    }

    #[test]
    fn plain_strings_are_borrowed() {
        let Json::Obj(members) = parse(r#"{"k":"plain","e":"esc\n"}"#).unwrap() else {
            panic!("not an object");
        };
        assert!(matches!(members[0].1, Json::Str(Cow::Borrowed("plain"))));
        assert!(matches!(&members[1].1, Json::Str(Cow::Owned(s)) if s == "esc\n"));
    }

    #[test]
    fn fields_report_what_is_wrong() {
        let mut fields = Fields::of(parse(r#"{"n":300,"s":"x","z":null}"#).unwrap()).unwrap();
        assert_eq!(
            fields.req::<u8>("n").unwrap_err(),
            "`n`: integer out of range for u8"
        );
        assert_eq!(fields.req::<u64>("missing").unwrap_err(), "needs `missing`");
        assert_eq!(fields.opt::<String>("z").unwrap(), None);
        assert_eq!(
            fields.req::<u64>("s").unwrap_err(),
            "`s`: expected an integer of 0 or more, found a string"
        );
        assert!(Fields::of(Json::Arr(vec![])).is_err());
    }
}
