//! The SVG charts: one well-formed, self-contained document with every panel's title, axis
//! descriptions, a line per series and the histogram's bars, drawn without any font file.

use super::*;

/// Checks that `text` is one well-formed XML element: tags nest and close, attributes are
/// quoted, `&` starts only the predefined or numeric entities, `<` appears only in markup.
/// Returns the elements' names in document order.
fn well_formed(text: &str) -> Result<Vec<String>, String> {
    fn entity_ok(rest: &str) -> bool {
        let Some(end) = rest.find(';') else {
            return false;
        };
        let name = &rest[1..end];
        matches!(name, "amp" | "lt" | "gt" | "quot" | "apos")
            || name
                .strip_prefix('#')
                .is_some_and(|code| code.chars().all(|c| c.is_ascii_digit()) && !code.is_empty())
    }
    fn check_text(text: &str) -> Result<(), String> {
        for (at, _) in text.match_indices('&') {
            if !entity_ok(&text[at..]) {
                return Err(format!(
                    "bare & in {:?}",
                    &text[at..text.len().min(at + 20)]
                ));
            }
        }
        Ok(())
    }
    let mut open: Vec<String> = Vec::new();
    let mut names = Vec::new();
    let mut roots = 0;
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some(start) = rest.find('<') else {
            check_text(rest)?;
            if !rest.trim().is_empty() && open.is_empty() {
                return Err(format!("text outside the root: {rest:?}"));
            }
            break;
        };
        check_text(&rest[..start])?;
        if open.is_empty() && !rest[..start].trim().is_empty() {
            return Err("text outside the root".to_owned());
        }
        let end = rest[start..].find('>').ok_or("unclosed tag")? + start;
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let expected = open.pop().ok_or(format!("</{name}> closes nothing"))?;
            if expected != name.trim() {
                return Err(format!("</{name}> closes <{expected}>"));
            }
            continue;
        }
        let (body, closed) = match tag.strip_suffix('/') {
            Some(body) => (body, true),
            None => (tag, false),
        };
        let name: String = body.chars().take_while(|c| !c.is_whitespace()).collect();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!("bad tag <{tag}>"));
        }
        let mut attributes = body[name.len()..].trim();
        while !attributes.is_empty() {
            let (key, value) = attributes.split_once('=').ok_or(format!("<{tag}>"))?;
            let key = key.trim();
            if key.is_empty() || key.contains(char::is_whitespace) {
                return Err(format!("bad attribute in <{tag}>"));
            }
            let value = value.trim_start();
            let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'');
            let quote = quote.ok_or(format!("unquoted {key} in <{tag}>"))?;
            let close = value[1..].find(quote).ok_or(format!("<{tag}>"))? + 1;
            let inside = &value[1..close];
            if inside.contains('<') {
                return Err(format!("< in {key} of <{tag}>"));
            }
            check_text(inside)?;
            attributes = value[close + 1..].trim_start();
        }
        if open.is_empty() {
            roots += 1;
        }
        names.push(name.clone());
        if !closed {
            open.push(name);
        }
    }
    match (open.as_slice(), roots) {
        ([], 1) => Ok(names),
        ([], roots) => Err(format!("{roots} root elements")),
        (open, _) => Err(format!("unclosed {open:?}")),
    }
}

#[test]
fn the_xml_check_catches_what_it_should() {
    assert!(well_formed(r#"<svg a="1"><g><text x='2'>a &amp; b</text></g><rect/></svg>"#).is_ok());
    for bad in [
        "<svg><g></svg>",
        "<svg></svg><svg></svg>",
        r#"<svg a=1></svg>"#,
        "<svg>a & b</svg>",
        r#"<svg a="<"></svg>"#,
        "<svg>",
        "text<svg></svg>",
    ] {
        assert!(well_formed(bad).is_err(), "{bad} passed");
    }
}

/// The `<polyline>` elements drawn in `color` (plotters writes colors as `#RRGGBB`).
fn polylines_in<'a>(svg: &'a str, color: &str) -> Vec<&'a str> {
    svg.split('<')
        .filter(|element| element.starts_with("polyline") && element.contains(color))
        .collect()
}

/// The text of every `<text>` element, unescaped.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|element| {
            let content = element.split_once('>')?.1.split_once("</text>")?.0;
            let text = [
                ("&lt;", "<"),
                ("&gt;", ">"),
                ("&quot;", "\""),
                ("&apos;", "'"),
            ]
            .iter()
            .fold(content.trim().to_owned(), |text, (entity, character)| {
                text.replace(entity, character)
            });
            Some(text.replace("&amp;", "&"))
        })
        .collect()
}

#[test]
fn every_panel_is_drawn_with_its_titles_and_series() {
    let report = build(info(2_050), good_snapshot(), memory_log()).unwrap();
    let svg = svg(&report).unwrap();
    let names = well_formed(&svg).unwrap_or_else(|error| panic!("{error}\n{svg}"));
    assert_eq!(names.first().map(String::as_str), Some("svg"));
    assert!(svg.starts_with("<svg "), "{}", &svg[..100]);
    assert!(svg.contains(r#"xmlns="http://www.w3.org/2000/svg""#));
    assert!(!svg.contains("<script") && !svg.contains("href") && !svg.contains("<image"));
    assert!(!svg.contains("NaN") && !svg.contains("inf"));
    assert!(svg.contains("lg-test&lt;&amp;&gt;") && !svg.contains("lg-test<&>"));
    // To look at the chart: LOADGEN_SVG_DUMP=/tmp/report.svg cargo test -p loadgen --lib svg
    if let Some(path) = std::env::var_os("LOADGEN_SVG_DUMP") {
        std::fs::write(path, &svg).unwrap();
    }

    let texts = texts(&svg);
    for expected in [
        "loadgen run lg-test<&> — PASS",
        "Throughput per second",
        "Latency per second",
        "Latency per 1 s window",
        "POST → terminal latency distribution",
        "Resident memory (VmRSS)",
        "orders / s",
        "MiB",
        "sent",
        "completed",
        "cancelled",
        "POST p99",
        "POST → terminal p50",
        "POST → terminal p99",
        "order-svc",
        "inventory-svc",
        "Latency measured from each order's intended send time (open loop: no coordinated \
         omission)",
    ] {
        assert!(
            texts.iter().any(|text| text == expected),
            "no text {expected:?} in {texts:#?}"
        );
    }
    assert!(
        texts
            .iter()
            .any(|text| text.starts_with("loadgen sent its orders late by p99")),
        "{texts:#?}"
    );
    assert!(
        texts
            .iter()
            .any(|text| text.starts_with("p99 ") && text.ends_with(" ms"))
    );

    // Throughput and latency per second, per window, histogram markers, memory: a polyline per
    // series (the legend's samples are polylines too).
    for (color, at_least) in [
        ("#8D99AE", 1), // sent
        ("#2A9D8F", 1), // completed
        ("#E76F51", 1), // cancelled
        ("#6C757D", 2), // POST p99, per second and per window
        ("#264653", 3), // p50: per second, per window, histogram marker
        ("#D62828", 3), // p99: the same
        ("#1B9E77", 1), // the first process
        ("#D95F02", 1), // the second process
    ] {
        let lines = polylines_in(&svg, color);
        assert!(
            lines.len() >= at_least,
            "{color}: {} polylines",
            lines.len()
        );
    }
    let bars = svg
        .split('<')
        .filter(|element| element.starts_with("rect") && element.contains("#457B9D"))
        .count();
    let nonempty = report
        .terminal_latency_histogram_ms
        .iter()
        .filter(|bin| bin.count > 0)
        .count();
    assert_eq!(bars, nonempty, "a bar per non-empty bin");
}

#[test]
fn a_closed_loop_run_without_memory_has_four_panels_at_most() {
    let mut info = closed(2_050);
    info.load.window_secs = 60.0;
    let mut snapshot = good_snapshot();
    for attempt in &mut snapshot.attempts {
        attempt.intended_at = None;
    }
    let report = report(info, snapshot);
    let svg = svg(&report).unwrap();
    well_formed(&svg).unwrap_or_else(|error| panic!("{error}"));
    let texts = texts(&svg);
    assert!(
        texts.iter().any(|text| text.contains("actual send")),
        "{texts:#?}"
    );
    assert!(
        !texts.iter().any(|text| text.contains("window")),
        "{texts:#?}"
    );
    assert!(!texts.iter().any(|text| text.contains("Resident memory")));
    assert!(
        !texts
            .iter()
            .any(|text| text.contains("sent its orders late"))
    );
    assert!(svg.contains(r#"height="1080""#), "header and three panels");
}

#[test]
fn an_empty_run_says_so_in_every_latency_panel() {
    let report = report(info(1_000), Snapshot::default());
    let svg = svg(&report).unwrap();
    well_formed(&svg).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(
        texts(&svg).iter().filter(|text| *text == "no data").count(),
        3
    );
    assert!(texts(&svg).iter().any(|text| text.ends_with("— FAIL")));
}
