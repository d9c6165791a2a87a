//! Unit tests of `state::pollers`: the recovery rule and the table's file format.

use super::*;

const RULE: Rule = Rule {
    policy: Recovery::Window,
    replies: 3,
    seconds: 10,
};

fn file(table: &Table) -> Vec<u8> {
    let (header, body) = table.render();
    [header.as_bytes(), body].concat()
}

fn poller(peer: &str, profile: Option<&str>) -> Poller {
    Poller::new(Some(peer.parse().unwrap()), profile)
}

fn line(recover: bool) -> String {
    match recover {
        true => "up ready 80%\n".into(),
        false => "80%\n".into(),
    }
}

/// Polls `p` at each time with the reply kind, returning which replies carried `up ready`.
fn polls(table: &mut Table, p: &Poller, times: &[(u64, Kind)]) -> Vec<bool> {
    times
        .iter()
        .map(|(at, kind)| table.poll(p, *kind, RULE, *at, &line).unwrap().recover)
        .collect()
}

#[test]
fn a_new_poller_is_owed_until_count_and_time_are_both_met() {
    let mut table = Table::default();
    let a = poller("10.0.0.1", None);
    let n = Kind::Normal;
    // Three replies within 2 s: the count is met, the time is not, so it goes on.
    let got = polls(
        &mut table,
        &a,
        &[
            (0, n),
            (1_000, n),
            (2_000, n),
            (9_999, n),
            (10_000, n),
            (11_000, n),
        ],
    );
    assert_eq!(got, [true, true, true, true, false, false]);
    // Polled rarely: 10 s pass at once, but three replies are still owed.
    let b = poller("10.0.0.2", None);
    let got = polls(
        &mut table,
        &b,
        &[(0, n), (30_000, n), (60_000, n), (90_000, n)],
    );
    assert_eq!(got, [true, true, true, false]);
}

#[test]
fn every_non_normal_kind_makes_it_owed_again_from_that_reply() {
    let mut table = Table::default();
    let a = poller("10.0.0.1", Some("web"));
    let (n, d) = (Kind::Normal, Kind::NonNormal);
    polls(&mut table, &a, &[(0, n), (1, n), (2, n), (20_000, n)]);
    assert_eq!(table.find(&a).unwrap().owed, None);
    // drain, maint and stopped are all NonNormal: the window counts from the last one.
    let got = polls(
        &mut table,
        &a,
        &[
            (30_000, d),
            (35_000, d),
            (36_000, n),
            (40_000, n),
            (44_000, n),
            (44_999, n),
            (45_000, n),
        ],
    );
    assert_eq!(got, [false, false, true, true, true, true, false]);
    assert_eq!(table.find(&a).unwrap().last_reply, "80%");
}

#[test]
fn the_usual_interval_follows_a_slower_pace_fast_and_a_faster_one_slowly() {
    assert_eq!(learn(0, 12_000), 12_000);
    assert_eq!(learn(12_000, 12_000), 12_000);
    assert_eq!(learn(2_000, 12_000), 7_000);
    assert_eq!(learn(12_000, 0), 9_000);
    // An absence is not a pace.
    assert_eq!(learn(12_000, MAX_INTERVAL_MS + 1), 12_000);
    assert_eq!(learn(0, MAX_INTERVAL_MS + 1), 0);
}

/// The README's check run by hand three times at once from the load balancer's own
/// address, right after a drain ends, cannot end that load balancer's recovery: only the
/// first counts, so the load balancer's own next poll still carries `up ready`.
#[test]
fn quick_checks_by_hand_count_once_and_the_poller_still_gets_up_ready() {
    for every in [2_000, 12_000, 30_000] {
        let mut table = Table::default();
        let lb = poller("10.0.0.1", None);
        let (n, d) = (Kind::Normal, Kind::NonNormal);
        let mut at = 0;
        for kind in [n, n, n, n, n, d, d] {
            polls(&mut table, &lb, &[(at, kind)]);
            at += every;
        }
        // The drain ends (`lb-feedback mode normal`) just after the poller's last poll.
        let ended = at - every + 100;
        table.owe_all(ended).unwrap();
        let by_hand = [ended + 50, ended + 150, ended + 250];
        let got = polls(&mut table, &lb, &by_hand.map(|t| (t, n)));
        assert_eq!(got, [true, true, true]);
        assert_eq!(
            table.find(&lb).unwrap().owed.unwrap().sent,
            1,
            "every {every}"
        );
        let next = table.poll(&lb, n, RULE, at, &line).unwrap();
        assert!(next.recover, "every {every}: {}", next.why);
        assert!(next.why.contains("2 of 3 counted"), "{}", next.why);
    }
}

#[test]
fn a_quick_check_says_it_was_not_counted() {
    let mut table = Table::default();
    let lb = poller("10.0.0.1", None);
    polls(
        &mut table,
        &lb,
        &[(0, Kind::NonNormal), (12_000, Kind::Normal)],
    );
    let quick = table.poll(&lb, Kind::Normal, RULE, 12_500, &line).unwrap();
    assert!(quick.recover);
    assert!(
            quick.why.contains("not counted: 0.5 s after the last counted one, under half this poller's usual interval (12.0 s); 1 of 3 counted"),
            "{}",
            quick.why
        );
}

#[test]
fn an_absent_poller_stays_owed_however_long_it_was_away() {
    let mut table = Table::default();
    let a = poller("10.0.0.1", None);
    polls(&mut table, &a, &[(0, Kind::NonNormal)]);
    // Back after an hour (its agent was disabled): still owed, all three replies.
    let hour = 3_600_000;
    let got = polls(
        &mut table,
        &a,
        &[
            (hour, Kind::Normal),
            (hour + 1, Kind::Normal),
            (hour + 2, Kind::Normal),
            (hour + 3, Kind::Normal),
        ],
    );
    assert_eq!(got, [true, true, true, false]);
}

#[test]
fn pollers_are_told_apart_by_address_and_profile() {
    let mut table = Table::default();
    let a = poller("10.0.0.1", None);
    let a_web = poller("10.0.0.1", Some("web"));
    let b = poller("::ffff:10.0.0.2", None);
    assert_eq!(b.peer, "10.0.0.2");
    for p in [&a, &a_web, &b] {
        polls(
            &mut table,
            p,
            &[
                (0, Kind::Normal),
                (1, Kind::Normal),
                (2, Kind::Normal),
                (20_000, Kind::Normal),
            ],
        );
    }
    polls(&mut table, &a, &[(30_000, Kind::NonNormal)]);
    assert!(
        table
            .poll(&a, Kind::Normal, RULE, 31_000, &line)
            .unwrap()
            .recover
    );
    assert!(
        !table
            .poll(&a_web, Kind::Normal, RULE, 31_000, &line)
            .unwrap()
            .recover
    );
    assert!(
        !table
            .poll(&b, Kind::Normal, RULE, 31_000, &line)
            .unwrap()
            .recover
    );
    assert_eq!(table.entries().unwrap().len(), 3);
}

#[test]
fn errors_change_nothing_and_a_mode_change_owes_everyone() {
    let mut table = Table::default();
    let a = poller("10.0.0.1", None);
    // A first poll answered with an error leaves it new: owed from then, nothing sent.
    polls(&mut table, &a, &[(0, Kind::Error)]);
    assert_eq!(table.find(&a).unwrap().owed, Some(Owed::from(0)));
    polls(&mut table, &a, &[(0, Kind::NonNormal), (1, Kind::Error)]);
    assert_eq!(table.find(&a).unwrap().owed.unwrap().since_ms, 0);
    assert_eq!(table.find(&a).unwrap().last_reply, "80%");
    polls(
        &mut table,
        &a,
        &[
            (1, Kind::Normal),
            (2, Kind::Normal),
            (3, Kind::Normal),
            (20_000, Kind::Normal),
        ],
    );
    assert_eq!(table.find(&a).unwrap().owed, None);
    table.owe_all(50_000).unwrap();
    assert_eq!(table.find(&a).unwrap().owed, Some(Owed::from(50_000)));
}

#[test]
fn a_clock_stepped_back_restarts_the_time_bound_from_now() {
    let mut table = Table::default();
    let a = poller("10.0.0.1", None);
    polls(&mut table, &a, &[(100_000, Kind::NonNormal)]);
    let got = polls(
        &mut table,
        &a,
        &[
            (1_000, Kind::Normal),
            (2_000, Kind::Normal),
            (3_000, Kind::Normal),
            (10_999, Kind::Normal),
            (11_000, Kind::Normal),
        ],
    );
    assert_eq!(got, [true, true, true, true, false]);
}

#[test]
fn the_table_is_bounded_and_forgets_pollers_after_a_day() {
    let mut table = Table::default();
    for i in 0..MAX_POLLERS as u64 {
        let p = poller(&format!("10.0.{}.{}", i / 256, i % 256), None);
        table
            .poll(&p, Kind::Normal, RULE, 1_000 + i, &line)
            .unwrap();
    }
    assert_eq!(table.entries().unwrap().len(), MAX_POLLERS);
    // One more evicts the least recently seen (10.0.0.0), not any other.
    table
        .poll(
            &poller("10.99.0.1", None),
            Kind::Normal,
            RULE,
            10_000,
            &line,
        )
        .unwrap();
    assert_eq!(table.entries().unwrap().len(), MAX_POLLERS);
    assert!(table.find(&poller("10.0.0.0", None)).is_none());
    assert!(table.find(&poller("10.0.0.1", None)).is_some());
    // A day later only the one polling now is left; the others are new if they return.
    let later = 10_000 + FORGET_AFTER_MS;
    table
        .poll(&poller("10.99.0.2", None), Kind::Normal, RULE, later, &line)
        .unwrap();
    assert_eq!(table.entries().unwrap().len(), 1);
}

#[test]
fn the_file_round_trips_and_anything_else_is_refused() {
    let mut table = Table::default();
    table
        .poll(&poller("10.0.0.1", None), Kind::Normal, RULE, 5, &line)
        .unwrap();
    table
        .poll(
            &poller("fe80::1", Some("web")),
            Kind::NonNormal,
            RULE,
            6,
            &|_| "drain maxconn:5 #tcp:3389:96>=95\n".into(),
        )
        .unwrap();
    let bytes = file(&table);
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        text.contains("\n10.0.0.1 * 5 0 5 1 5 up ready 80%\n"),
        "{text}"
    );
    assert!(
        text.contains("\nfe80::1 web 6 0 6 0 - drain maxconn:5 #tcp:3389:96>=95\n"),
        "{text}"
    );
    assert_eq!(
        Table::parse(bytes.clone()).unwrap().entries(),
        table.entries()
    );
    assert_eq!(
        Table::parse(file(&Table::default())).unwrap().entries(),
        Ok(vec![])
    );
    // Cut short, one digit changed, garbage, someone else's format.
    assert!(Table::parse(bytes[..bytes.len() - 3].to_vec()).is_err());
    let edited = text.replace(" 5 1 5 ", " 5 0 5 ");
    assert!(
        Table::parse(edited.into_bytes())
            .unwrap_err()
            .to_string()
            .contains("checksum")
    );
    assert!(Table::parse(b"\xff\xfe".to_vec()).is_err());
    assert!(Table::parse(b"hello\n".to_vec()).is_err());
    let old = Table::parse(b"lb-feedback pollers 1 0\n".to_vec());
    assert_eq!(
        old.unwrap_err().to_string(),
        "format 1, from an older lb-feedback"
    );
    // A malformed line in a table that checks out (a forged checksum) is never taken for
    // an entry: the poll it belongs to fails, `status` names it, the others go on.
    let body = "10.0.0.1 a/b 1 0 - 0 - 80%\n10.0.0.2 * 1 0 - 0 - 80%\n10.0.0.3 * x 0 - 0 - 80%\n";
    let forged = format!("{HEADER} {:016x}\n{body}", checksum(body.as_bytes()));
    let mut forged = Table::parse(forged.into_bytes()).unwrap();
    assert!(forged.entries().unwrap_err().to_string().contains("line 2"));
    let other = forged.poll(&poller("10.0.0.2", None), Kind::Normal, RULE, 2, &line);
    assert!(!other.unwrap().recover);
    let own = forged.poll(&poller("10.0.0.3", None), Kind::Normal, RULE, 2, &line);
    assert!(own.is_err());
}

#[test]
fn an_undelivered_reply_is_taken_back_unless_another_poll_came_since() {
    let mut table = Table::default();
    let a = poller("10.0.0.1", None);
    let first = table.poll(&a, Kind::Normal, RULE, 1_000, &line).unwrap();
    let before = table.find(&a).unwrap();
    assert_eq!(before.owed.map(|o| o.sent), Some(1));
    let second = table.poll(&a, Kind::Normal, RULE, 2_000, &line).unwrap();
    assert_eq!(table.undo(second.undo.as_ref().unwrap()), Ok(true));
    assert_eq!(table.find(&a), Some(before));
    // Taken back already, or overtaken by a later poll: nothing changes.
    assert_eq!(table.undo(second.undo.as_ref().unwrap()), Ok(false));
    table.poll(&a, Kind::Normal, RULE, 3_000, &line).unwrap();
    let later = table.find(&a);
    assert_eq!(table.undo(first.undo.as_ref().unwrap()), Ok(false));
    assert_eq!(table.find(&a), later);
    // A poller first seen with an undelivered reply is not kept.
    let b = poller("10.0.0.2", None);
    let only = table.poll(&b, Kind::Normal, RULE, 4_000, &line).unwrap();
    assert_eq!(table.undo(only.undo.as_ref().unwrap()), Ok(true));
    assert_eq!(table.find(&b), None);
    assert_eq!(table.entries().unwrap().len(), 1);
    // A non-normal reply makes the poller owed, delivered or not: nothing to take back.
    let drain = table.poll(&a, Kind::NonNormal, RULE, 5_000, &|_| {
        "drain #mode\n".into()
    });
    assert_eq!(drain.unwrap().undo, None);
}

#[test]
fn reply_text_is_one_printable_bounded_line() {
    assert_eq!(reply_text("up ready 80%\n"), "up ready 80%");
    assert_eq!(reply_text("a\tb\n"), "a b");
    assert_eq!(reply_text(&"x".repeat(500)).len(), MAX_REPLY);
}
