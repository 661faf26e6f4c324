//! A small validator for the vSphere Replication OpenAPI 3.0 document, so integration tests can
//! check that what the client sends and what the simulator answers match the spec itself, not our
//! own serde types (which could share a bug with the code under test).
//!
//! It understands exactly the schema keywords `vsphere-replication-api-v2.json` uses: `$ref`,
//! `allOf`, `type`, `nullable`, `enum`, `required`, `properties`, `items`, `minimum`, `maximum`,
//! `format` (`int32`, `int64`, `uuid`) and `uniqueItems`; `description` and `example` are
//! annotations. [`Spec::unsupported_keywords`] lists anything else, so a newer spec that starts
//! using `oneOf` or `additionalProperties` fails a test instead of being silently half-checked.
//!
//! Integers are strict: `5.0` is a number, not an integer, because no serializer of an `i64` or
//! `i32` writes a fraction, and one that does is a bug worth seeing.

use serde_json::Value;

/// The base path every operation in the spec lives under; tests may pass it or leave it off.
const BASE_PATH: &str = "/api/rest/vr/v2";

const UNDERSTOOD_KEYWORDS: &[&str] = &[
    "$ref",
    "allOf",
    "type",
    "nullable",
    "enum",
    "required",
    "properties",
    "items",
    "minimum",
    "maximum",
    "format",
    "uniqueItems",
    "description",
    "example",
];
const UNDERSTOOD_FORMATS: &[&str] = &["int32", "int64", "uuid"];

/// The parsed OpenAPI document.
pub struct Spec {
    doc: Value,
}

/// One operation found for a method and a concrete path.
struct Operation<'a> {
    template: &'a str,
    op: &'a Value,
}

impl Spec {
    /// Loads `vsphere-replication-api-v2.json` from the shared folder beside the repository.
    pub fn load() -> Spec {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/vr-api/vsphere-replication-api-v2.json"
        );
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        let doc = serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"));
        Spec::from_value(doc)
    }

    /// Wraps an already parsed document, e.g. a hand-written one in a validator test.
    pub fn from_value(doc: Value) -> Spec {
        Spec { doc }
    }

    /// Validates `value` against `components.schemas.<name>`, returning every violation.
    pub fn validate_schema(&self, name: &str, value: &Value) -> Result<(), Vec<String>> {
        let schema = serde_json::json!({ "$ref": format!("#/components/schemas/{name}") });
        self.check(&schema, value)
    }

    /// Validates a response: the status must be documented for the operation, and the body must
    /// be present exactly when the response documents `application/json` content, and match it.
    pub fn validate_response(
        &self,
        method: &str,
        path: &str,
        status: u16,
        body: Option<&Value>,
    ) -> Result<(), Vec<String>> {
        let found = self.operation(method, path)?;
        let responses = &found.op["responses"];
        let response = responses
            .get(status.to_string())
            .or_else(|| responses.get("default"))
            .ok_or_else(|| {
                let documented: Vec<&str> = responses
                    .as_object()
                    .map(|r| r.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                vec![format!(
                    "{} {} does not document status {status} (documented: {})",
                    method.to_uppercase(),
                    found.template,
                    documented.join(", ")
                )]
            })?;
        let what = format!("response {status} of {}", found.template);
        self.check_content(&response["content"], body, &what, false)
    }

    /// Validates a request body against the operation's `requestBody`.
    pub fn validate_request_body(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(), Vec<String>> {
        let found = self.operation(method, path)?;
        let request = &found.op["requestBody"];
        let required = request["required"].as_bool().unwrap_or(false);
        let what = format!("request to {}", found.template);
        self.check_content(&request["content"], body, &what, !required)
    }

    /// The `operationId` for a method and a concrete path, e.g. `("GET", "/tasks/abc")` gives
    /// `getTaskInfo`.
    pub fn operation_id(&self, method: &str, path: &str) -> Option<String> {
        let found = self.operation(method, path).ok()?;
        found.op["operationId"].as_str().map(str::to_owned)
    }

    /// The path template a concrete path matches, literal segments winning over `{params}`.
    pub fn path_template(&self, path: &str) -> Option<&str> {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let path = path.strip_prefix(BASE_PATH).unwrap_or(path);
        let segments: Vec<&str> = path.split('/').collect();
        let paths = self.doc["paths"].as_object()?;
        paths
            .keys()
            .filter_map(|template| {
                let parts: Vec<&str> = template.split('/').collect();
                if parts.len() != segments.len() {
                    return None;
                }
                // One flag per segment, true for a literal; comparing these lexicographically
                // prefers `/replications/count` over `/replications/{replication_id}`.
                let mut literals = Vec::with_capacity(parts.len());
                for (part, segment) in parts.iter().zip(&segments) {
                    let is_param = part.starts_with('{') && part.ends_with('}');
                    if is_param && !segment.is_empty() {
                        literals.push(false);
                    } else if part == segment {
                        literals.push(true);
                    } else {
                        return None;
                    }
                }
                Some((literals, template.as_str()))
            })
            .max()
            .map(|(_, template)| template)
    }

    /// Every schema keyword or `format` in the spec that this validator does not understand, as
    /// `components.schemas.Name.prop: keyword`. Empty for the spec as shipped.
    pub fn unsupported_keywords(&self) -> Vec<String> {
        let mut found = Vec::new();
        for (name, schema) in self.doc["components"]["schemas"]
            .as_object()
            .into_iter()
            .flatten()
        {
            unsupported_in(schema, &format!("components.schemas.{name}"), &mut found);
        }
        for (template, item) in self.doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                let at = format!("{method} {template}");
                for (status, response) in op["responses"].as_object().into_iter().flatten() {
                    for (kind, media) in response["content"].as_object().into_iter().flatten() {
                        let at = format!("{at} {status} {kind}");
                        unsupported_in(&media["schema"], &at, &mut found);
                    }
                }
                for (kind, media) in op["requestBody"]["content"]
                    .as_object()
                    .into_iter()
                    .flatten()
                {
                    let at = format!("{at} requestBody {kind}");
                    unsupported_in(&media["schema"], &at, &mut found);
                }
            }
        }
        found
    }

    fn operation(&self, method: &str, path: &str) -> Result<Operation<'_>, Vec<String>> {
        let method = method.to_ascii_lowercase();
        let template = self
            .path_template(path)
            .ok_or_else(|| vec![format!("no path in the spec matches {path}")])?;
        let op = &self.doc["paths"][template][&method];
        if !op.is_object() {
            return Err(vec![format!(
                "{} is not documented for {template}",
                method.to_uppercase()
            )]);
        }
        Ok(Operation { template, op })
    }

    /// Checks a body against a `content` map (only `application/json` occurs in this spec).
    fn check_content(
        &self,
        content: &Value,
        body: Option<&Value>,
        what: &str,
        optional: bool,
    ) -> Result<(), Vec<String>> {
        let schema = content
            .get("application/json")
            .map(|media| &media["schema"]);
        match (schema, body) {
            (Some(schema), Some(body)) => self.check(schema, body),
            (None, None) => Ok(()),
            (Some(_), None) if optional => Ok(()),
            (Some(_), None) => Err(vec![format!("{what}: expected a JSON body, got none")]),
            (None, Some(_)) => Err(vec![format!("{what}: documents no body, got one")]),
        }
    }

    fn check(&self, schema: &Value, value: &Value) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        self.walk(schema, value, "$", &mut errors);
        // Sorted so the order does not depend on serde_json's map order, and deduplicated
        // because an entity and its `allOf` member often repeat the same `required` list.
        errors.sort();
        errors.dedup();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn resolve<'a>(&'a self, reference: &str) -> Option<&'a Value> {
        let pointer = reference.strip_prefix('#')?;
        self.doc.pointer(pointer)
    }

    fn walk(&self, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
        if let Some(reference) = schema["$ref"].as_str() {
            // In OpenAPI 3.0 a `$ref` replaces its object: siblings are ignored.
            match self.resolve(reference) {
                Some(target) => self.walk(target, value, path, errors),
                None => errors.push(format!("{path}: unresolved $ref {reference}")),
            }
            return;
        }
        if value.is_null() && schema["nullable"].as_bool() == Some(true) {
            return;
        }
        for member in schema["allOf"].as_array().into_iter().flatten() {
            self.walk(member, value, path, errors);
        }
        if let Some(expected) = schema["type"].as_str() {
            if !has_type(value, expected) {
                errors.push(format!(
                    "{path}: expected {expected}, got {}",
                    kind_of(value)
                ));
                return;
            }
        }
        if let Some(allowed) = schema["enum"].as_array() {
            if !allowed.contains(value) {
                // JSON rendering quotes strings, so an empty or padded value stays visible.
                let names: Vec<String> = allowed.iter().map(Value::to_string).collect();
                errors.push(format!(
                    "{path}: {value} is not one of {}",
                    names.join(", ")
                ));
            }
        }
        check_number(schema, value, path, errors);
        if let (Some("uuid"), Some(text)) = (schema["format"].as_str(), value.as_str()) {
            if !is_uuid(text) {
                errors.push(format!("{path}: {value} is not a uuid"));
            }
        }
        if let Some(object) = value.as_object() {
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap_or_default();
                if !object.contains_key(name) {
                    errors.push(format!(
                        "{}: missing required property",
                        property_path(path, name)
                    ));
                }
            }
            // Properties the schema does not name are allowed: the spec never sets
            // `additionalProperties`, whose OpenAPI default is `true`.
            for (name, property) in schema["properties"].as_object().into_iter().flatten() {
                if let Some(field) = object.get(name) {
                    self.walk(property, field, &property_path(path, name), errors);
                }
            }
        }
        if let Some(items) = value.as_array() {
            if schema.get("items").is_some() {
                for (index, item) in items.iter().enumerate() {
                    self.walk(&schema["items"], item, &format!("{path}[{index}]"), errors);
                }
            }
            if schema["uniqueItems"].as_bool() == Some(true) {
                for (second, item) in items.iter().enumerate() {
                    if let Some(first) = items[..second].iter().position(|other| other == item) {
                        errors.push(format!("{path}: items {first} and {second} are equal"));
                    }
                }
            }
        }
    }
}

fn check_number(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(number) = value.as_f64() else {
        return;
    };
    let range = match schema["format"].as_str() {
        Some("int32") => Some((i128::from(i32::MIN), i128::from(i32::MAX), "int32")),
        Some("int64") => Some((i128::from(i64::MIN), i128::from(i64::MAX), "int64")),
        _ => None,
    };
    if let (Some((low, high, format)), Some(integer)) = (range, as_integer(value)) {
        if integer < low || integer > high {
            errors.push(format!("{path}: {value} is out of {format} range"));
        }
    }
    if let Some(minimum) = schema["minimum"].as_f64() {
        if number < minimum {
            errors.push(format!("{path}: {value} is below minimum {minimum}"));
        }
    }
    if let Some(maximum) = schema["maximum"].as_f64() {
        if number > maximum {
            errors.push(format!("{path}: {value} is above maximum {maximum}"));
        }
    }
}

fn as_integer(value: &Value) -> Option<i128> {
    value
        .as_i64()
        .map(i128::from)
        .or_else(|| value.as_u64().map(i128::from))
}

fn has_type(value: &Value, expected: &str) -> bool {
    match expected {
        "integer" => as_integer(value).is_some(),
        "number" => value.is_number(),
        other => kind_of(value) == other,
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) if as_integer(value).is_some() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn property_path(path: &str, name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        format!("{path}.{name}")
    } else {
        format!("{path}[{}]", Value::from(name))
    }
}

/// The 8-4-4-4-12 hex shape; the spec does not restrict the version or variant nibbles.
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.chars().all(|c| c.is_ascii_hexdigit()))
}

fn unsupported_in(schema: &Value, at: &str, found: &mut Vec<String>) {
    let Some(object) = schema.as_object() else {
        found.push(format!("{at}: schema is not an object"));
        return;
    };
    for keyword in object.keys() {
        if !UNDERSTOOD_KEYWORDS.contains(&keyword.as_str()) {
            found.push(format!("{at}: {keyword}"));
        }
    }
    if let Some(format) = object.get("format").and_then(Value::as_str) {
        if !UNDERSTOOD_FORMATS.contains(&format) {
            found.push(format!("{at}: format {format}"));
        }
    }
    for (name, property) in object
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        unsupported_in(property, &format!("{at}.{name}"), found);
    }
    if let Some(items) = object.get("items") {
        unsupported_in(items, &format!("{at}[]"), found);
    }
    for (index, member) in object
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        unsupported_in(member, &format!("{at}.allOf[{index}]"), found);
    }
}
