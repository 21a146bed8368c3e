//! Just enough of the Kubernetes protobuf encoding to accept what typed `kubectl create` commands
//! send: the `k8s\0` + `runtime.Unknown` envelope and ConfigMap, Secret and Namespace messages,
//! turned into the JSON the rest of the double works with.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Map, Value};

const MAGIC: &[u8] = b"k8s\0";

/// Why a protobuf body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ProtobufError {
    #[error("protobuf body does not start with the k8s magic number")]
    NoMagic,
    #[error("truncated or malformed protobuf: {0}")]
    Malformed(&'static str),
    #[error("the double cannot decode protobuf {0}; send JSON instead")]
    UnsupportedKind(String),
    #[error("unsupported protobuf content encoding {0:?}")]
    UnsupportedEncoding(String),
}

/// A cursor over one protobuf message.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn varint(&mut self) -> Result<u64, ProtobufError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self
                .buf
                .split_first()
                .ok_or(ProtobufError::Malformed("varint"))?;
            self.buf = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtobufError::Malformed("varint too long"))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], ProtobufError> {
        if len > self.buf.len() {
            return Err(ProtobufError::Malformed("length beyond end"));
        }
        let (head, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(head)
    }

    /// The next (field number, value) pair, or None at the end of the message.
    fn field(&mut self) -> Result<Option<(u64, Field<'a>)>, ProtobufError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Field::Fixed
            }
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| ProtobufError::Malformed("length"))?;
                Field::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Field::Fixed
            }
            _ => return Err(ProtobufError::Malformed("unsupported wire type")),
        };
        Ok(Some((key >> 3, value)))
    }
}

enum Field<'a> {
    Varint(u64),
    /// fixed32/fixed64: no field the double reads uses them, so their value is skipped.
    Fixed,
    Bytes(&'a [u8]),
}

impl<'a> Field<'a> {
    fn bytes(&self) -> Result<&'a [u8], ProtobufError> {
        match self {
            Self::Bytes(bytes) => Ok(bytes),
            _ => Err(ProtobufError::Malformed(
                "expected a length-delimited field",
            )),
        }
    }

    fn string(&self) -> Result<String, ProtobufError> {
        String::from_utf8(self.bytes()?.to_vec())
            .map_err(|_| ProtobufError::Malformed("invalid UTF-8"))
    }

    fn varint(&self) -> Result<u64, ProtobufError> {
        match self {
            Self::Varint(v) => Ok(*v),
            _ => Err(ProtobufError::Malformed("expected a varint field")),
        }
    }
}

/// Decodes a whole request body into the JSON object it stands for.
pub(crate) fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let envelope = body.strip_prefix(MAGIC).ok_or(ProtobufError::NoMagic)?;
    let (mut api_version, mut kind, mut raw, mut encoding) =
        (String::new(), String::new(), &[][..], String::new());
    let mut reader = Reader::new(envelope);
    while let Some((number, field)) = reader.field()? {
        match number {
            1 => {
                let mut type_meta = Reader::new(field.bytes()?);
                while let Some((n, f)) = type_meta.field()? {
                    match n {
                        1 => api_version = f.string()?,
                        2 => kind = f.string()?,
                        _ => {}
                    }
                }
            }
            2 => raw = field.bytes()?,
            3 => encoding = field.string()?,
            _ => {}
        }
    }
    if !encoding.is_empty() {
        return Err(ProtobufError::UnsupportedEncoding(encoding));
    }
    let mut object = match kind.as_str() {
        "ConfigMap" | "Secret" => data_object(&kind, raw)?,
        "Namespace" => namespace(raw)?,
        _ => {
            return Err(ProtobufError::UnsupportedKind(format!(
                "{api_version}/{kind}"
            )))
        }
    };
    object["apiVersion"] = json!(api_version);
    object["kind"] = json!(kind);
    Ok(object)
}

/// ConfigMap {metadata 1, data 2, binaryData 3, immutable 4} and
/// Secret {metadata 1, data 2 (bytes), type 3, stringData 4, immutable 5}.
fn data_object(kind: &str, raw: &[u8]) -> Result<Value, ProtobufError> {
    let secret = kind == "Secret";
    let mut object = json!({});
    let mut reader = Reader::new(raw);
    while let Some((number, field)) = reader.field()? {
        match (number, secret) {
            (1, _) => object["metadata"] = object_meta(field.bytes()?)?,
            (2, false) => insert_entry(&mut object, "data", field.bytes()?, false)?,
            (2, true) | (3, false) => {
                let name = if secret { "data" } else { "binaryData" };
                insert_entry(&mut object, name, field.bytes()?, true)?;
            }
            (3, true) => object["type"] = json!(field.string()?),
            (4, true) => insert_entry(&mut object, "stringData", field.bytes()?, false)?,
            (4, false) | (5, true) => object["immutable"] = json!(field.varint()? != 0),
            _ => {}
        }
    }
    Ok(object)
}

/// Namespace {metadata 1, spec 2 {finalizers 1}, status 3}.
fn namespace(raw: &[u8]) -> Result<Value, ProtobufError> {
    let mut object = json!({});
    let mut reader = Reader::new(raw);
    while let Some((number, field)) = reader.field()? {
        match number {
            1 => object["metadata"] = object_meta(field.bytes()?)?,
            2 => {
                let mut finalizers = Vec::new();
                let mut spec = Reader::new(field.bytes()?);
                while let Some((n, f)) = spec.field()? {
                    if n == 1 {
                        finalizers.push(f.string()?);
                    }
                }
                object["spec"] = json!({"finalizers": finalizers});
            }
            _ => {}
        }
    }
    Ok(object)
}

/// ObjectMeta: name 1, generateName 2, namespace 3, labels 11, annotations 12, finalizers 14.
fn object_meta(raw: &[u8]) -> Result<Value, ProtobufError> {
    let mut meta = json!({});
    let mut reader = Reader::new(raw);
    while let Some((number, field)) = reader.field()? {
        match number {
            1 => meta["name"] = json!(field.string()?),
            2 => meta["generateName"] = json!(field.string()?),
            3 => meta["namespace"] = json!(field.string()?),
            11 => insert_entry(&mut meta, "labels", field.bytes()?, false)?,
            12 => insert_entry(&mut meta, "annotations", field.bytes()?, false)?,
            14 => push(&mut meta, "finalizers", json!(field.string()?)),
            _ => {}
        }
    }
    // Empty strings are proto3 defaults, i.e. "not set" in JSON terms.
    if let Some(map) = meta.as_object_mut() {
        map.retain(|_, v| v.as_str() != Some(""));
    }
    Ok(meta)
}

/// Adds one `map<string, string|bytes>` entry {key 1, value 2}; bytes become base64 as in JSON.
fn insert_entry(
    target: &mut Value,
    name: &str,
    entry: &[u8],
    binary: bool,
) -> Result<(), ProtobufError> {
    let (mut key, mut value) = (String::new(), json!(""));
    let mut reader = Reader::new(entry);
    while let Some((number, field)) = reader.field()? {
        match number {
            1 => key = field.string()?,
            2 if binary => value = json!(STANDARD.encode(field.bytes()?)),
            2 => value = json!(field.string()?),
            _ => {}
        }
    }
    if !target[name].is_object() {
        target[name] = Value::Object(Map::new());
    }
    target[name][key] = value;
    Ok(())
}

fn push(target: &mut Value, name: &str, item: Value) {
    match target[name].as_array_mut() {
        Some(items) => items.push(item),
        None => target[name] = json!([item]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(number: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![u8::try_from(number << 3 | 2).unwrap()];
        let mut len = bytes.len();
        while len >= 0x80 {
            out.push(u8::try_from(len & 0x7f).unwrap() | 0x80);
            len >>= 7;
        }
        out.push(u8::try_from(len).unwrap());
        out.extend_from_slice(bytes);
        out
    }

    fn envelope(kind: &str, raw: &[u8]) -> Vec<u8> {
        let type_meta = [field(1, b"v1"), field(2, kind.as_bytes())].concat();
        let unknown = [field(1, &type_meta), field(2, raw)].concat();
        [MAGIC, &unknown].concat()
    }

    #[test]
    fn decodes_a_configmap_like_kubectl_sends() {
        let meta = [
            field(1, b"demo"),
            field(3, b"default"),
            field(11, &[field(1, b"app"), field(2, b"web")].concat()),
        ]
        .concat();
        let entry = |k: &[u8], v: &[u8]| field(2, &[field(1, k), field(2, v)].concat());
        let raw = [
            field(1, &meta),
            entry(b"k", b"v"),
            entry(b"x", b"long value ".repeat(20).as_slice()),
        ]
        .concat();
        let object = decode(&envelope("ConfigMap", &raw)).unwrap();
        assert_eq!(object["kind"], "ConfigMap");
        assert_eq!(object["metadata"]["name"], "demo");
        assert_eq!(object["metadata"]["labels"]["app"], "web");
        assert_eq!(object["data"]["k"], "v");
        assert_eq!(object["data"]["x"].as_str().unwrap().len(), 220);
    }

    #[test]
    fn secret_bytes_become_base64() {
        let raw = [
            field(1, &field(1, b"s")),
            field(2, &[field(1, b"k"), field(2, b"\x00\x01")].concat()),
            field(3, b"Opaque"),
        ]
        .concat();
        let object = decode(&envelope("Secret", &raw)).unwrap();
        assert_eq!(object["data"]["k"], "AAE=");
        assert_eq!(object["type"], "Opaque");
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert_eq!(decode(b"{}"), Err(ProtobufError::NoMagic));
        assert!(decode(b"k8s\0\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff").is_err());
        assert!(decode(b"k8s\0\x0a\x05ab").is_err());
        assert!(decode(b"k8s\0\x0b").is_err());
        assert!(matches!(
            decode(&envelope("Pod", b"")),
            Err(ProtobufError::UnsupportedKind(_))
        ));
        for len in 0..64 {
            let noise: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = decode(&[MAGIC, &noise].concat());
        }
    }
}
