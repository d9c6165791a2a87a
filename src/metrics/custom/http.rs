//! A custom monitor's HTTP source: one plain `http://` GET with ureq (a maintained HTTP/1.1
//! client; built without TLS, since the source is a local endpoint), bounded in time by the
//! source's timeout and in size by [`MAX_OUTPUT`]; a status other than 2xx is a failure.

use std::time::Duration;

use super::MAX_OUTPUT;

pub fn get(url: &str, timeout: Duration) -> Result<String, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        // Proxies come from the environment (http_proxy): the URL is the config's alone.
        .proxy(None)
        .max_redirects(0)
        .http_status_as_error(false)
        .max_response_header_size(16 * 1024)
        // ureq's buffers are 128 KiB each by default, zeroed on every connection: two thirds
        // of this source's instructions (docs/BENCHMARKS.md). A GET and a small answer need
        // a fraction; the input one still holds the largest head allowed.
        .input_buffer_size(16 * 1024)
        .output_buffer_size(2 * 1024)
        .user_agent(concat!("lb-feedback/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut response = agent.get(url).call().map_err(|err| err.to_string())?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP status {}", status.as_u16()));
    }
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_OUTPUT as u64)
        .read_to_vec()
        .map_err(|err| match err {
            ureq::Error::BodyExceedsLimit(_) => {
                format!("body longer than {} KiB", MAX_OUTPUT / 1024)
            }
            err => err.to_string(),
        })?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}
