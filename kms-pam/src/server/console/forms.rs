//! What the console's forms share: errors shown next to their field, and the API handlers'
//! refusals turned into them. Forms check their fields with the API's own `validate` functions
//! (so each message lands next to its field), then call the API handler itself, which checks
//! rights and everything again; the page never decides differently from the API.

use std::collections::BTreeMap;

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use maud::{html, Markup};

use super::page::{answer, PageError};
use crate::server::edge::error::ApiError;

/// The key of errors that belong to the whole form rather than one field.
pub(super) const WHOLE_FORM: &str = "";

/// Messages by field name.
#[derive(Debug, Default)]
pub(super) struct FieldErrors(BTreeMap<&'static str, String>);

impl FieldErrors {
    /// Records `result`'s refusal against `field`; the value if there was none.
    pub(super) fn check<T>(
        &mut self,
        field: &'static str,
        result: Result<T, ApiError>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.add(field, e.message());
                None
            }
        }
    }

    /// Records `message` against `field` (the first message of a field stays).
    pub(super) fn add(&mut self, field: &'static str, message: &str) {
        self.0.entry(field).or_insert_with(|| message.to_owned());
    }

    /// Whether the form passed.
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The message for `field`, if any.
    pub(super) fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    /// Files an API handler's refusal: a status in `fields` goes next to that field, any other
    /// 400, 404 or 409 above the form; everything else (rights, outages) is a page of its own.
    pub(super) fn api(
        &mut self,
        e: ApiError,
        fields: &[(StatusCode, &'static str)],
    ) -> Result<(), PageError> {
        let status = e.status();
        if let Some((_, field)) = fields.iter().find(|(s, _)| *s == status) {
            self.add(field, e.message());
            return Ok(());
        }
        match status {
            StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND | StatusCode::CONFLICT => {
                self.add(WHOLE_FORM, e.message());
                Ok(())
            }
            _ => Err(e.into()),
        }
    }

    /// The message above the form, if any.
    pub(super) fn whole_form(&self) -> Markup {
        html! {
            @if let Some(message) = self.get(WHOLE_FORM) {
                p.field-error role="alert" { (message) }
            }
        }
    }
}

/// A labelled control with its error under it (`aria-invalid` set when there is one).
pub(super) fn field(errors: &FieldErrors, name: &str, label: &str, control: Markup) -> Markup {
    html! {
        label data-field=(name) {
            (label)
            (control)
            @if let Some(message) = errors.get(name) {
                span.field-error role="alert" { (message) }
            }
        }
    }
}

/// A page re-shown with its form's errors: 422 when there are any.
pub(super) fn reshown(errors: &FieldErrors, markup: Markup) -> Response {
    if errors.is_empty() {
        answer(markup)
    } else {
        (StatusCode::UNPROCESSABLE_ENTITY, answer(markup)).into_response()
    }
}
