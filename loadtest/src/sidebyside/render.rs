//! table.md, summary.json and summary.csv of a [`Report`].

use anyhow::Result;

use super::{BASELINE, GENERATOR_LIMIT_PERCENT, Report, Run, Wrk};

/// Up to 3 significant digits, as the other tables (`n/a` for a missing figure).
fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), crate::export::num)
}

/// One cell: each label's figure, joined with ` / ` in the labels' order.
fn cell(report: &Report, key: &(String, usize), f: impl Fn(&Run) -> String) -> String {
    report
        .labels
        .iter()
        .map(|l| {
            report
                .run(l, &key.0, key.1)
                .map_or_else(|| "–".to_owned(), &f)
        })
        .collect::<Vec<_>>()
        .join(" / ")
}

fn wrk_cell(report: &Report, endpoint: &str, f: impl Fn(&Wrk) -> String) -> String {
    report
        .labels
        .iter()
        .map(|l| report.wrk(l, endpoint).map_or_else(|| "–".to_owned(), &f))
        .collect::<Vec<_>>()
        .join(" / ")
}

fn answer(w: &Wrk) -> String {
    let n = |v: Option<u64>| v.map_or_else(|| "?".to_owned(), |v| v.to_string());
    format!(
        "{}: {} + {} B",
        w.status.map_or_else(|| "?".to_owned(), |s| s.to_string()),
        n(w.header_bytes),
        n(w.body_bytes)
    )
}

fn endpoint_name(endpoint: &str) -> &str {
    match endpoint {
        "poll-empty" => {
            "empty poll (pushpoll `/poll/clock?after=<future>`; nchan interval-poll `/sub/poll/clock` → 304)"
        }
        "healthz" => "`/healthz` (pushpoll's route; nginx `return 200 \"ok\"`)",
        other => other,
    }
}

pub fn markdown(report: &Report) -> String {
    let labels = report.labels.join(" / ");
    let compared = report.compared();
    let mut md = String::new();
    md.push_str(&format!(
        "## Subscribers (loadtest, {})\n\n",
        report.workload()
    ));
    md.push_str(&format!("Each cell: {labels}.\n\n"));
    let mut head = vec![
        "transport",
        "subscribers",
        "deliveries",
        "lost",
        "p50 ms",
        "p99 ms",
        "bytes/event",
        "server CPU µs/delivery",
    ];
    let cpu_heads: Vec<String> = compared
        .iter()
        .map(|l| format!("CPU {l} ÷ {BASELINE}"))
        .collect();
    head.extend(cpu_heads.iter().map(String::as_str));
    head.extend([
        "RSS KiB/connection",
        "RSS after − before (MiB)",
        "loadtest CPU %",
    ]);
    md.push_str(&format!("| {} |\n", head.join(" | ")));
    md.push_str(&format!(
        "|{}\n",
        head.iter()
            .enumerate()
            .map(|(i, _)| if i == 0 { "---|" } else { "---:|" })
            .collect::<String>()
    ));
    for key in report.keys() {
        let mut row = vec![
            key.0.clone(),
            key.1.to_string(),
            cell(report, &key, |r| r.deliveries.to_string()),
            cell(report, &key, |r| r.lost.to_string()),
            cell(report, &key, |r| num(Some(r.p50_us as f64 / 1000.0))),
            cell(report, &key, |r| num(Some(r.p99_us as f64 / 1000.0))),
            cell(report, &key, |r| num(Some(r.bytes_per_event))),
            cell(report, &key, |r| num(Some(r.cpu_us_per_delivery))),
        ];
        for l in &compared {
            row.push(if report.generator_bound(l, &key.0, key.1) {
                format!("not used: loadtest > {GENERATOR_LIMIT_PERCENT} %")
            } else {
                num(report.cpu_ratio(l, &key.0, key.1))
            });
        }
        row.push(cell(report, &key, |r| num(r.rss_per_connection_kib)));
        row.push(cell(report, &key, |r| num(r.rss_after_minus_before_mib)));
        row.push(cell(report, &key, |r| num(r.loadtest_cpu_percent)));
        md.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    md.push_str(
        "\nDefinitions. deliveries: events received, counted once per subscriber; lost: \
         published events a subscriber never received; p50/p99: publish-to-receipt latency \
         (loadtest's `latency_us`); bytes/event: bytes read on the subscribers' sockets, \
         headers and framing included, ÷ deliveries; server CPU µs/delivery: the server's user \
         + system CPU in the measured window ÷ deliveries (pushpoll: its process; nchan: the \
         nginx worker); CPU ratio: that figure ÷ nchan's for the same row (below 1: cheaper \
         than nchan), not given (`not used`) where either run's load tester used more than \
         70 % of its core, since there the generator may be what limits the run; RSS KiB/connection: (server RSS peak in the measured window, sampled once \
         a second, − its VmRSS just before the subscribers connected) ÷ subscribers; RSS after − before: VmRSS a \
         fixed wait after the load tester exited (its sockets closed) minus VmRSS before \
         (`n/a` where the script did not measure it); loadtest CPU %: the load tester's own CPU in \
         the measured window ÷ the window's length (100 = one core busy: with the generator \
         pinned to one core, a figure near 100 means the generator may limit the run). Short polling polls every 1 s \
         (loadtest's default interval), so its latency is about half that by construction.\n",
    );

    if !report.wrk.is_empty() {
        md.push_str("\n## Requests per second (wrk -t1 -c50)\n\n");
        md.push_str(&format!("Each cell: {labels}.\n\n"));
        let mut head = vec!["endpoint".to_owned(), "requests/s".to_owned()];
        head.extend(compared.iter().map(|l| format!("{l} ÷ {BASELINE}")));
        head.push("one answer: status: header + body bytes".to_owned());
        head.push("non-2xx/3xx".to_owned());
        md.push_str(&format!("| {} |\n", head.join(" | ")));
        md.push_str(&format!(
            "|---|{}---|---:|\n",
            "---:|".repeat(head.len() - 3)
        ));
        let mut endpoints: Vec<&str> = report.wrk.iter().map(|w| w.endpoint.as_str()).collect();
        endpoints.sort_by_key(|e| (*e != "poll-empty", *e));
        endpoints.dedup();
        for e in endpoints {
            let mut row = vec![
                endpoint_name(e).to_owned(),
                wrk_cell(report, e, |w| num(Some(w.requests_per_s.round()))),
            ];
            for l in &compared {
                row.push(num(report.rps_ratio(l, e)));
            }
            row.push(wrk_cell(report, e, answer));
            row.push(wrk_cell(report, e, |w| w.non_2xx_3xx.to_string()));
            md.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        md.push_str(
            "\nThe answers differ in kind: pushpoll's empty batch is a `200` with a small JSON \
             body, nchan's \"nothing new\" is a `304 Not Modified` with none (each measured once \
             with curl before wrk ran). Ratio above 1: more requests/s than nchan.\n",
        );
    }
    md
}

pub fn json(report: &Report) -> Result<String> {
    #[derive(serde::Serialize)]
    struct Ratios {
        label: String,
        transport: String,
        subscribers: usize,
        cpu_per_delivery_ratio: Option<f64>,
    }
    #[derive(serde::Serialize)]
    struct WrkRatio {
        label: String,
        endpoint: String,
        requests_per_s_ratio: Option<f64>,
    }
    #[derive(serde::Serialize)]
    struct Out<'a> {
        baseline: &'a str,
        #[serde(flatten)]
        report: &'a Report,
        cpu_ratios: Vec<Ratios>,
        wrk_ratios: Vec<WrkRatio>,
    }
    let compared = report.compared();
    let mut cpu_ratios = Vec::new();
    for (t, n) in report.keys() {
        for l in &compared {
            cpu_ratios.push(Ratios {
                label: (*l).to_owned(),
                transport: t.clone(),
                subscribers: n,
                cpu_per_delivery_ratio: report.cpu_ratio(l, &t, n),
            });
        }
    }
    let mut wrk_ratios = Vec::new();
    for w in report.wrk.iter().filter(|w| w.label != BASELINE) {
        if compared.contains(&w.label.as_str()) {
            wrk_ratios.push(WrkRatio {
                label: w.label.clone(),
                endpoint: w.endpoint.clone(),
                requests_per_s_ratio: report.rps_ratio(&w.label, &w.endpoint),
            });
        }
    }
    let out = Out {
        baseline: BASELINE,
        report,
        cpu_ratios,
        wrk_ratios,
    };
    Ok(serde_json::to_string_pretty(&out)? + "\n")
}

/// One line per label × transport × subscribers; empty fields for what was not measured.
pub fn csv(report: &Report) -> String {
    let opt = |v: Option<f64>| v.map_or_else(String::new, |v| v.to_string());
    let mut out = String::from(
        "label,transport,subscribers,deliveries,lost,p50_us,p99_us,bytes_per_event,\
         cpu_us_per_delivery,cpu_ratio_to_nchan,rss_before_bytes,rss_peak_bytes,\
         rss_per_connection_kib,rss_after_bytes,rss_after_minus_before_mib,\
         loadtest_cpu_percent\n",
    );
    for (t, n) in report.keys() {
        for l in &report.labels {
            let Some(r) = report.run(l, &t, n) else {
                continue;
            };
            let cpu_ratio = if l == BASELINE {
                None
            } else {
                report.cpu_ratio(l, &t, n)
            };
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                r.label,
                r.transport,
                r.subscribers,
                r.deliveries,
                r.lost,
                r.p50_us,
                r.p99_us,
                r.bytes_per_event,
                r.cpu_us_per_delivery,
                opt(cpu_ratio),
                r.rss_before_bytes
                    .map_or_else(String::new, |v| v.to_string()),
                r.rss_peak_bytes,
                opt(r.rss_per_connection_kib),
                r.rss_after_bytes
                    .map_or_else(String::new, |v| v.to_string()),
                opt(r.rss_after_minus_before_mib),
                opt(r.loadtest_cpu_percent),
            ));
        }
    }
    out
}
