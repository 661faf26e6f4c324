//! The crate's single integration-test binary: one module per area, shared helpers in `support`.

mod support;

mod openapi_validator;
