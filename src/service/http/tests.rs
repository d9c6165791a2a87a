//! Unit tests of `service::http`: request heads, responses and the `/metrics` text.

use super::*;

struct Bytes<'a>(&'a [&'a [u8]]);

impl Read for Bytes<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some((first, rest)) = self.0.split_first() else {
            return Ok(0);
        };
        let n = first.len().min(buf.len());
        buf[..n].copy_from_slice(&first[..n]);
        self.0 = rest;
        Ok(n)
    }
}

impl ReadTimeout for Bytes<'_> {
    fn timeout(&mut self, _left: Duration) -> io::Result<()> {
        Ok(())
    }
}

fn head(chunks: &[&[u8]]) -> Result<Head, HeadError> {
    read_head(&mut Bytes(chunks), Instant::now() + Duration::from_secs(5))
}

#[test]
fn heads_are_read_in_pieces_and_bounded() {
    let got = head(&[b"GET /load?x=1 HT", b"TP/1.1\r\nHost: a\r\n", b"\r\n"]).unwrap();
    assert_eq!(
        got,
        Head {
            method: "GET".into(),
            path: "/load".into()
        }
    );
    assert_eq!(head(&[b"GET /load HTTP/1.1\r\n"]), Err(HeadError::Gone));
    assert_eq!(head(&[b"\x16\x03\x01garbage\r\n\r\n"]), Err(HeadError::Bad));
    let long = vec![b'a'; MAX_HEAD + 10];
    let mut request = b"GET /".to_vec();
    request.extend_from_slice(&long);
    assert_eq!(head(&[&request]), Err(HeadError::TooLarge));
    let many = "X: y\r\n".repeat(MAX_HEADERS + 1);
    let request = format!("GET / HTTP/1.1\r\n{many}\r\n");
    assert_eq!(head(&[request.as_bytes()]), Err(HeadError::TooLarge));
}

#[test]
fn load_follows_the_adaptive_agent_convention() {
    assert_eq!(load_value(&Status::Ready(87)), 13);
    assert_eq!(load_value(&Status::Ready(100)), 0);
    assert_eq!(load_value(&Status::Ready(0)), 100);
    assert_eq!(load_value(&Status::Stopped("mode".into())), 101);
    assert_eq!(load_value(&Status::Drain("cpu:96>=95".into())), 102);
    assert_eq!(load_value(&Status::Maint("mode".into())), 102);
}

#[test]
fn responses_say_their_length_and_close() {
    let bytes = Response::text(200, "13\n").bytes();
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("Content-Length: 3\r\n"), "{text}");
    assert!(text.contains("Connection: close\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\n13\n"), "{text}");
    let head = Response {
        head_only: true,
        ..Response::text(405, "GET or HEAD only\n")
    };
    let text = String::from_utf8(head.bytes()).unwrap();
    assert!(text.contains("Allow: GET, HEAD\r\n") && text.ends_with("\r\n\r\n"));
    assert!(text.contains("Content-Length: 17\r\n"), "{text}");
}

fn load(name: &str, value: f64) -> Load {
    Load::new(name.into(), value, 1.0, 95.0, 85.0)
}

#[test]
fn metrics_name_every_figure_with_its_labels() {
    let figures = Figures {
        version: "1.2.3",
        replies: Ok(vec![
            Reply {
                profile: None,
                status: Status::Ready(87),
                loads: vec![
                    load("cpu", 12.345),
                    load("tcp:3389", 14.0),
                    load("sessions", 120.0),
                ],
            },
            Reply {
                profile: Some("w\"eb".into()),
                status: Status::Drain("tcp:3389:96>=95".into()),
                loads: vec![load("tcp:3389", 96.0)],
            },
        ]),
        sample: Some(Duration::from_millis(1001)),
        samples: 7,
        answered: 40,
        refused: BTreeMap::from([(Refusal::NotAllowed, 3)]),
        pollers: Some((2, 1)),
    };
    let text = render(&figures);
    for line in [
        "lb_feedback_build_info{version=\"1.2.3\"} 1",
        "lb_feedback_reply_percent{profile=\"(base)\"} 87",
        "lb_feedback_state{profile=\"(base)\",state=\"ready\"} 1",
        "lb_feedback_state{profile=\"w\\\"eb\",state=\"drain\"} 1",
        "lb_feedback_state{profile=\"w\\\"eb\",state=\"ready\"} 0",
        "lb_feedback_monitor_load_percent{profile=\"(base)\",monitor=\"cpu\"} 12.345",
        "lb_feedback_monitor_load_percent{profile=\"(base)\",monitor=\"tcp\",port=\"3389\"} 14",
        "lb_feedback_monitor_threshold_percent{profile=\"w\\\"eb\",monitor=\"tcp\",port=\"3389\"} 95",
        "lb_feedback_monitor_importance{profile=\"(base)\",monitor=\"cpu\"} 1",
        "lb_feedback_monitor_release_percent{profile=\"w\\\"eb\",monitor=\"tcp\",port=\"3389\"} 85",
        "lb_feedback_monitor_holding{profile=\"(base)\",monitor=\"cpu\"} 0",
        "lb_feedback_monitor_load_percent{profile=\"(base)\",monitor=\"sessions\"} 120",
        "lb_feedback_sample_duration_seconds 1.001",
        "lb_feedback_samples_total 7",
        "lb_feedback_polls_answered_total 40",
        "lb_feedback_polls_refused_total{reason=\"not_allowed\"} 3",
        "lb_feedback_polls_refused_total{reason=\"max_in_flight_per_source\"} 0",
        "lb_feedback_pollers 2",
        "lb_feedback_pollers_owed_recovery 1",
        "# TYPE lb_feedback_samples_total counter",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    // Drain has no percent.
    assert!(!text.contains("lb_feedback_reply_percent{profile=\"w"));
    let failed = Figures {
        replies: Err(Failed { word: "cpu".into() }),
        pollers: None,
        ..figures
    };
    let text = render(&failed);
    assert!(text.contains("lb_feedback_state{profile=\"(base)\",state=\"error\"} 1"));
    assert!(!text.contains("lb_feedback_reply_percent{"));
    assert!(!text.lines().any(|l| l.starts_with("lb_feedback_pollers ")));
}

#[test]
fn each_part_of_a_monitors_name_is_its_own_label() {
    assert_eq!(monitor_labels("cpu"), r#"monitor="cpu""#);
    assert_eq!(monitor_labels("tcp:3389"), r#"monitor="tcp",port="3389""#);
    assert_eq!(
        monitor_labels("pressure:memory:full"),
        r#"monitor="pressure",resource="memory",kind="full""#
    );
    // A custom monitor's name has no colon; it is the monitor label alone.
    assert_eq!(monitor_labels("queue.depth"), r#"monitor="queue.depth""#);
}
