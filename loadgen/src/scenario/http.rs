//! The `http` scenario: the same request every time, to any URL — a page, an API
//! route, nginx. Method, headers and body are fixed at start; the request is built
//! from a template, so each send clones prepared parts instead of parsing them.

use hyper::body::Bytes;

use crate::http::{HttpClient, Sender, Template};
use crate::outcome::Outcome;

pub struct HttpScenario {
    pub client: HttpClient,
    pub template: Template,
    pub body: Bytes,
}

impl HttpScenario {
    pub async fn execute(&self, own: Option<&mut Option<Sender>>) -> Outcome {
        self.client.send(self.template.build(self.body.clone()), own, false).await.0
    }
}
