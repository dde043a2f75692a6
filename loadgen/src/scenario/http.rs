//! The `http` scenario: the same request every time, to any URL — a page, an API
//! route, nginx. Method, headers and body are fixed at start, in a template prepared
//! once.

use hyper::body::Bytes;

use crate::http::{HttpClient, Outgoing, Sender, Template};
use crate::outcome::Outcome;

pub struct HttpScenario {
    pub client: HttpClient,
    pub template: Template,
    pub body: Bytes,
}

impl HttpScenario {
    pub async fn execute(&self, own: Option<&mut Option<Sender>>) -> Outcome {
        let request = Outgoing { template: &self.template, body: &self.body, extra: None };
        self.client.send(request, own, false).await.0
    }
}
