//! The few query parameters that change what a request means, read the way the API server
//! reads them.

use std::borrow::Cow;

use url::form_urlencoded;

/// The first value of each of `keys` in `query`, found in one pass that borrows unless a value
/// needs decoding.
///
/// The API server decodes `ListOptions` and `PodLogOptions` from `url.Values`, where only the
/// first of repeated parameters counts; `watch=TRUE&watch=false` is therefore a watch.
pub(super) fn first_values<'q, const N: usize>(
    query: Option<&'q str>,
    keys: [&str; N],
) -> [Option<Cow<'q, str>>; N] {
    let mut found: [Option<Cow<'q, str>>; N] = std::array::from_fn(|_| None);
    let Some(query) = query else { return found };
    let mut missing = N;
    for pair in query.split('&') {
        // Go's `url.ParseQuery` drops the pairs it cannot decode and keys holding `;`.
        let raw_key = pair.split_once('=').map_or(pair, |(key, _)| key);
        if raw_key.contains(';') || !super::escapes_are_valid(pair) {
            continue;
        }
        let Some((key, value)) = form_urlencoded::parse(pair.as_bytes()).next() else {
            continue;
        };
        let Some(slot) = keys.iter().position(|k| *k == key.as_ref()) else {
            continue;
        };
        if found[slot].is_none() {
            found[slot] = Some(value);
            missing -= 1;
            if missing == 0 {
                break;
            }
        }
    }
    found
}

/// A boolean query parameter as apimachinery's `Convert_Slice_string_To_bool` reads it: only
/// absence, `0` and `false` (any case) are false, so `watch=` and `watch=yes` are true.
pub(super) fn is_true(value: Option<&str>) -> bool {
    value.is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
}

const NAME_FIELD: &str = "metadata.name";

/// The object name a field selector pins, as `fields.ParseSelector` followed by
/// `RequiresExactMatch("metadata.name")` finds it (so `kubectl get pod NAME -w` names NAME).
///
/// Any malformed term makes the API server drop the whole selector, and so do we.
pub(super) fn selector_name(selector: &str) -> Option<String> {
    // The API server sorts the terms before searching them, so the smallest matching term wins.
    let mut best: Option<(&str, Cow<'_, str>)> = None;
    for term in split_terms(selector).filter(|term| !term.is_empty()) {
        let (field, equality, value) = split_term(term)?;
        let value = unescape_value(value)?;
        let better = best.as_ref().is_none_or(|(smallest, _)| term < *smallest);
        if field == NAME_FIELD && equality && better {
            best = Some((term, value));
        }
    }
    let (_, name) = best?;
    is_valid_path_segment_name(&name).then(|| name.into_owned())
}

/// Splits on commas that are not escaped by a backslash.
fn split_terms(selector: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(selector);
    std::iter::from_fn(move || {
        let current = rest?;
        let mut escaped = false;
        for (i, c) in current.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                ',' => {
                    rest = Some(&current[i + 1..]);
                    return Some(&current[..i]);
                }
                _ => {}
            }
        }
        rest = None;
        Some(current)
    })
}

/// `(field, is_equality, raw value)` at the first operator, trying `!=`, `==`, `=` in that order
/// at each position.
fn split_term(term: &str) -> Option<(&str, bool, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        if let Some(value) = rest.strip_prefix("!=") {
            return Some((&term[..i], false, value));
        }
        if let Some(value) = rest.strip_prefix("==").or_else(|| rest.strip_prefix('=')) {
            return Some((&term[..i], true, value));
        }
    }
    None
}

/// `fields.UnescapeValue`: `\\`, `\,` and `\=` are the only escapes, and bare `,` or `=` are
/// errors. Borrows unless there is something to unescape.
fn unescape_value(value: &str) -> Option<Cow<'_, str>> {
    if !value.contains(['\\', ',', '=']) {
        return Some(Cow::Borrowed(value));
    }
    let mut out = String::with_capacity(value.len());
    let mut escaped = false;
    for c in value.chars() {
        match c {
            '\\' | ',' | '=' if escaped => {
                out.push(c);
                escaped = false;
            }
            _ if escaped => return None,
            '\\' => escaped = true,
            ',' | '=' => return None,
            _ => out.push(c),
        }
    }
    (!escaped).then_some(Cow::Owned(out))
}

/// apimachinery's `path.IsValidPathSegmentName`, plus non-empty: a name that could not appear as
/// a path segment is not a name.
pub(super) fn is_valid_path_segment_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '%'])
}
