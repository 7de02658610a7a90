//! Policy as code (issue 4), through the public API: the docs-service workload, fixtures, the
//! reference page's examples, and the policy as the `Guard`'s authorizer.

mod fixtures;
mod guard;
mod workload;
