//! Reading ONVIF and WS-Discovery XML with hard bounds.
//!
//! Why `roxmltree`: the Rust ONVIF crates (`onvif` from lumeohq and its forks) generate
//! bindings for every WSDL through `yaserde` and bring `reqwest`, an HTTP stack and
//! hundreds of types for the five calls used here; `quick-xml` is a pull parser that
//! would need hand-written namespace tracking. `roxmltree` is one small crate with no
//! dependencies, resolves namespaces, **refuses any DTD by default** (so no entity
//! expansion, billion laughs or external entities can happen: nothing is ever fetched)
//! and takes a node limit. The input is already bounded in bytes by the caller
//! ([`MAX_XML`]) and parsing is linear in it, so memory and time are bounded too.

use roxmltree::{Document, Node, ParsingOptions};

/// Largest XML answer read from a camera (a real GetProfiles is a few tens of KiB).
pub const MAX_XML: usize = 256 * 1024;
/// Most XML nodes in one answer.
const MAX_NODES: u32 = 20_000;

/// SOAP 1.2 envelope namespace.
pub const NS_SOAP: &str = "http://www.w3.org/2003/05/soap-envelope";
/// ONVIF device service.
pub const NS_DEVICE: &str = "http://www.onvif.org/ver10/device/wsdl";
/// ONVIF media service.
pub const NS_MEDIA: &str = "http://www.onvif.org/ver10/media/wsdl";
/// ONVIF schema types.
pub const NS_SCHEMA: &str = "http://www.onvif.org/ver10/schema";
/// WS-Discovery (2005/04, the one ONVIF uses).
pub const NS_DISCOVERY: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery";
/// WS-Addressing (2004/08).
pub const NS_ADDRESSING: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";

/// Why an XML answer was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    /// Larger than [`MAX_XML`].
    #[error("the answer is larger than {} KiB", MAX_XML / 1024)]
    TooLarge,
    /// Declares a DTD: refused, so entities are never expanded or fetched.
    #[error("the answer declares a DTD (entity expansion and external entities are refused)")]
    Dtd,
    /// More than the node limit.
    #[error("the answer has more than {MAX_NODES} XML nodes")]
    TooManyNodes,
    /// Not well-formed.
    #[error("the answer is not well-formed XML ({0})")]
    Malformed(String),
    /// Not a SOAP 1.2 envelope in the expected namespace.
    #[error("the answer is not a SOAP 1.2 envelope (root element {0})")]
    NotSoap(String),
}

/// Parses `bytes` as UTF-8 XML within the bounds.
pub fn parse(bytes: &[u8]) -> Result<Document<'_>, XmlError> {
    if bytes.len() > MAX_XML {
        return Err(XmlError::TooLarge);
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| XmlError::Malformed("not UTF-8".into()))?
        .trim_start_matches('\u{feff}');
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        ..ParsingOptions::default()
    };
    Document::parse_with_options(text, options).map_err(|e| match e {
        roxmltree::Error::DtdDetected => XmlError::Dtd,
        roxmltree::Error::NodesLimitReached => XmlError::TooManyNodes,
        other => XmlError::Malformed(clean(&other.to_string(), 120)),
    })
}

/// The `Body` of a SOAP 1.2 envelope.
pub fn soap_body<'a, 'i>(doc: &'a Document<'i>) -> Result<Node<'a, 'i>, XmlError> {
    let root = doc.root_element();
    if !root.has_tag_name((NS_SOAP, "Envelope")) {
        let ns = root.tag_name().namespace().unwrap_or("no namespace");
        return Err(XmlError::NotSoap(clean(
            &format!("{} in {ns}", root.tag_name().name()),
            160,
        )));
    }
    child(root, NS_SOAP, "Body").ok_or_else(|| XmlError::NotSoap("Envelope without Body".into()))
}

/// The first child element `ns:name` of `node`.
pub fn child<'a, 'i>(node: Node<'a, 'i>, ns: &str, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| c.has_tag_name((ns, name)))
}

/// Every child element `ns:name` of `node`.
pub fn children<'a, 'i>(
    node: Node<'a, 'i>,
    ns: &'a str,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children().filter(move |c| c.has_tag_name((ns, name)))
}

/// The first descendant element `ns:name` of `node`.
pub fn find<'a, 'i>(node: Node<'a, 'i>, ns: &str, name: &str) -> Option<Node<'a, 'i>> {
    node.descendants().find(|c| c.has_tag_name((ns, name)))
}

/// The trimmed text of the element at `path` (namespaced child steps) under `node`.
pub fn text_at(node: Node<'_, '_>, path: &[(&str, &str)]) -> Option<String> {
    let mut at = node;
    for (ns, name) in path {
        at = child(at, ns, name)?;
    }
    at.text().map(|t| t.trim().to_string())
}

/// `s` made safe to show: control characters replaced, at most `max` characters.
pub fn clean(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(max)
        .collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

/// `s` escaped for XML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn refuses_dtds_entities_and_oversize() {
        let laughs = br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>"#;
        assert_eq!(parse(laughs).unwrap_err(), XmlError::Dtd);
        let external = br#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><x>&xxe;</x>"#;
        assert_eq!(parse(external).unwrap_err(), XmlError::Dtd);
        let big = vec![b' '; MAX_XML + 1];
        assert_eq!(parse(&big).unwrap_err(), XmlError::TooLarge);
        let many = format!("<a>{}</a>", "<b/>".repeat(30_000));
        assert_eq!(parse(many.as_bytes()).unwrap_err(), XmlError::TooManyNodes);
        assert!(matches!(parse(b"<a><b></a>"), Err(XmlError::Malformed(_))));
    }

    #[test]
    fn soap_body_checks_the_namespace() {
        let wrong = br#"<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body/></e:Envelope>"#;
        let doc = parse(wrong).unwrap();
        assert!(matches!(soap_body(&doc), Err(XmlError::NotSoap(_))));
        let right = br#"<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body><x/></e:Body></e:Envelope>"#;
        let doc = parse(right).unwrap();
        assert!(soap_body(&doc).is_ok());
        assert_eq!(escape("a<&\"'>"), "a&lt;&amp;&quot;&apos;&gt;");
        assert_eq!(clean("a\u{1b}[31mb", 3), "a?[…");
    }
}
