//! Unit tests of the policy module as a whole.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::*;

const V1_POLICY: &str = r#"package main
import rego.v1

deny contains msg if {
	some vuln in input.vulnerabilities
	vuln.severity == "critical"
	msg := sprintf("%s is critical", [vuln.id])
}
"#;

const V0_POLICY: &str = r#"package main

deny[msg] {
	vuln := input.vulnerabilities[_]
	vuln.severity == "critical"
	msg := sprintf("%s is critical", [vuln.id])
}
"#;

fn compile(rego: &str) -> Result<CompiledPolicy> {
    CompiledPolicy::compile("team-a/strict.rego", rego, PolicyOptions::default())
}

const CRITICAL_DENIALS: [&str; 2] = ["CVE-2021-44228 is critical", "CVE-2021-45046 is critical"];

#[test]
fn v1_policy_is_recognised_and_denies() -> Result<()> {
    let policy = check_contract("team-a/strict.rego", V1_POLICY)?;
    assert_eq!(policy.syntax(), Syntax::V1);
    let evaluation = policy.evaluate(&sample_report())?;
    assert_eq!(evaluation.deny, CRITICAL_DENIALS);
    assert!(!evaluation.is_compliant());
    assert!(policy.evaluate(&empty_report())?.is_compliant());
    Ok(())
}

#[test]
fn v0_policy_is_recognised_and_gives_the_same_verdict() -> Result<()> {
    let policy = check_contract("team-a/strict.rego", V0_POLICY)?;
    assert_eq!(policy.syntax(), Syntax::V0);
    assert_eq!(policy.evaluate(&sample_report())?.deny, CRITICAL_DENIALS);
    Ok(())
}

#[test]
fn v0_policy_with_future_keywords_is_v0() -> Result<()> {
    let rego = "package main\nimport future.keywords.in\n\
                deny[msg] { some v in input.vulnerabilities; msg := v.id }\n";
    assert_eq!(compile(rego)?.syntax(), Syntax::V0);
    Ok(())
}

#[test]
fn deny_as_an_array_is_accepted_sorted_and_deduplicated() -> Result<()> {
    let rego = "package main\nimport rego.v1\ndeny := [\"b\", \"a\", \"b\"]\n";
    let policy = check_contract("team-a/array.rego", rego)?;
    assert_eq!(policy.evaluate(&empty_report())?.deny, ["a", "b"]);
    Ok(())
}

#[test]
fn undefined_deny_is_compliant() -> Result<()> {
    let rego = "package main\nimport rego.v1\ndeny := [\"x\"] if input.nothing\n";
    assert!(compile(rego)?.evaluate(&sample_report())?.is_compliant());
    Ok(())
}

#[test]
fn syntax_error_carries_line_column_and_caret() {
    let rego = "package main\nimport rego.v1\n\ndeny contains msg if {\n\tmsg := sprintf(\"%s\", [input.x]\n}\n";
    let err = compile(rego).err();
    let text = err.as_ref().map(ToString::to_string).unwrap_or_default();
    let Some(Error::Syntax {
        line,
        column,
        syntax,
        ref message,
        ..
    }) = err
    else {
        panic!("expected a syntax error, got {err:?}");
    };
    assert_eq!(syntax, Syntax::V1);
    // regorus points at the start of the construct it could not finish: the `sprintf` call.
    assert_eq!((line, column), (Some(5), Some(9)));
    assert!(text.contains("team-a/strict.rego:5:9"), "{text}");
    assert!(text.contains('^'), "{text}");
    assert!(message.contains("error:"), "{message}");
}

#[test]
fn syntax_error_of_a_v0_policy_is_reported_in_v0_terms() {
    let rego = "package main\n\ndeny[msg] {\n\tmsg := input.x\n}\n\nhelper[x] {\n\tx := [1,\n}\n";
    match compile(rego) {
        Err(Error::Syntax { syntax, line, .. }) => {
            assert_eq!(syntax, Syntax::V0, "the v0 parser got further");
            assert_eq!(line, Some(7), "the unfinished `helper` rule");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn other_package_is_rejected() {
    let rego = "package scan.policy\nimport rego.v1\ndeny contains \"x\" if false\n";
    match compile(rego) {
        Err(err @ Error::NotPackageMain { .. }) => {
            assert!(err.to_string().contains("`package scan.policy`"), "{err}");
            assert!(err.to_string().contains("package main"), "{err}");
        }
        other => panic!("expected NotPackageMain, got {other:?}"),
    }
}

#[test]
fn missing_deny_is_rejected() {
    let rego = "package main\nimport rego.v1\nviolation contains \"x\" if true\n";
    match compile(rego) {
        Err(err @ Error::MissingDeny { .. }) => {
            assert!(err.to_string().contains("deny contains msg if"), "{err}");
        }
        other => panic!("expected MissingDeny, got {other:?}"),
    }
}

#[test]
fn deny_of_the_wrong_type_is_rejected() {
    let boolean = "package main\nimport rego.v1\ndeny if count(input.vulnerabilities) > 0\n";
    match check_contract("team-a/bool.rego", boolean) {
        Err(err @ Error::DenyNotACollection { .. }) => {
            assert!(err.to_string().contains("a boolean (true)"), "{err}");
        }
        other => panic!("expected DenyNotACollection, got {other:?}"),
    }
    let numbers =
        "package main\nimport rego.v1\ndeny contains count(input.vulnerabilities) if true\n";
    match check_contract("team-a/numbers.rego", numbers) {
        Err(err @ Error::DenyNotStrings { .. }) => {
            assert!(err.to_string().contains("a number (0)"), "{err}");
        }
        other => panic!("expected DenyNotStrings, got {other:?}"),
    }
}

#[test]
fn runtime_error_is_an_evaluation_error() {
    let rego = "package main\nimport rego.v1\n\
                deny contains msg if {\n\tsome v in input.vulnerabilities\n\tmsg := sprintf(\"%d\", [to_number(v.id)])\n}\n";
    let policy = compile(rego);
    assert!(policy.is_ok(), "compiles: {policy:?}");
    if let Ok(policy) = policy {
        assert!(policy.evaluate(&empty_report()).is_ok());
        match policy.evaluate(&sample_report()) {
            Err(err @ Error::Evaluation { .. }) => {
                assert!(err.to_string().contains("team-a/strict.rego:5:"), "{err}");
            }
            other => panic!("expected an evaluation error, got {other:?}"),
        }
    }
    match check_contract("team-a/strict.rego", rego) {
        Err(Error::SampleReport { report, cause, .. }) => {
            assert_eq!(report, "sample report");
            assert!(matches!(*cause, Error::Evaluation { .. }), "{cause:?}");
        }
        other => panic!("expected a sample-report error, got {other:?}"),
    }
}

#[test]
fn conflicting_rule_values_are_an_evaluation_error() {
    let rego = "package main\nimport rego.v1\ndeny := [\"a\"] if true\ndeny := [\"b\"] if true\n";
    assert!(matches!(
        check_contract("team-a/conflict.rego", rego),
        Err(Error::SampleReport { .. })
    ));
}

const SLOW_POLICY: &str = r#"package main
import rego.v1

deny contains msg if {
	n := count([1 | some a in numbers.range(1, 100000); some b in numbers.range(1, 100000)])
	msg := sprintf("%d", [n])
}
"#;

#[test]
fn long_evaluation_times_out() -> Result<()> {
    let limit = Duration::from_millis(100);
    let options = PolicyOptions::default().with_timeout(limit);
    let policy = CompiledPolicy::compile("team-a/slow.rego", SLOW_POLICY, options)?;
    for _ in 0..2 {
        let started = Instant::now();
        match policy.evaluate(&empty_report()) {
            Err(err @ Error::Timeout { .. }) => {
                assert!(err.to_string().contains("100ms"), "{err}");
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(started.elapsed() < limit * 10, "{:?}", started.elapsed());
    }
    match check_contract_with("team-a/slow.rego", SLOW_POLICY, options) {
        Err(Error::SampleReport { report, cause, .. }) => {
            assert_eq!(report, "empty report");
            assert!(matches!(*cause, Error::Timeout { .. }), "{cause:?}");
        }
        other => panic!("expected a timeout on the empty report, got {other:?}"),
    }
    Ok(())
}

#[test]
fn concurrent_evaluations_agree() -> Result<()> {
    let policy = Arc::new(check_contract("team-a/strict.rego", V1_POLICY)?);
    let expected = policy.evaluate(&sample_report())?;
    let threads: Vec<_> = (0..8)
        .map(|thread| {
            let policy = Arc::clone(&policy);
            std::thread::spawn(move || {
                (0..50)
                    .map(|round| {
                        let report = if (thread + round) % 3 == 0 {
                            empty_report()
                        } else {
                            sample_report()
                        };
                        policy.evaluate(&report).map(|e| (report, e))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for thread in threads {
        let results = thread.join().map_err(|_| Error::Panic {
            name: "test".into(),
            message: "thread panicked".into(),
        })?;
        for result in results {
            let (report, evaluation) = result?;
            if report == empty_report() {
                assert!(evaluation.is_compliant());
            } else {
                assert_eq!(evaluation, expected);
            }
        }
    }
    Ok(())
}

#[test]
fn evaluation_reuses_the_parsed_modules() -> Result<()> {
    // A policy of a few thousand lines makes parsing and analysis measurable.
    let mut rego = String::from(V1_POLICY);
    for i in 0..2000 {
        rego.push_str(&format!(
            "helper_{i} := {i} if input.artifact.name == \"n{i}\"\n"
        ));
    }
    let started = Instant::now();
    let policy = compile(&rego)?;
    let compile_time = started.elapsed();
    let runs = 20u32;
    let started = Instant::now();
    for _ in 0..runs {
        assert_eq!(policy.evaluate(&sample_report())?.deny, CRITICAL_DENIALS);
    }
    let eval_time = started.elapsed() / runs;
    eprintln!("compile {compile_time:?}, evaluate {eval_time:?}");
    assert!(
        eval_time < compile_time,
        "{eval_time:?} vs {compile_time:?}"
    );
    // The clone an evaluation runs on shares the parsed modules: same allocation.
    let mut original = policy.engine().clone();
    let mut clone = policy.engine().clone();
    assert!(std::ptr::eq(original.get_modules(), clone.get_modules()));
    Ok(())
}

#[test]
fn input_that_is_not_a_report_is_evaluated_as_given() -> Result<()> {
    let policy = compile(V1_POLICY)?;
    assert!(
        policy
            .evaluate(&json!({"unexpected": true}))?
            .is_compliant()
    );
    Ok(())
}

#[test]
fn source_names_a_policy_by_namespace_and_name() {
    assert_eq!(source_name("team-a", "strict"), "team-a/strict.rego");
}

#[test]
fn compiled_policy_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CompiledPolicy>();
    assert_send_sync::<Error>();
}

#[test]
fn deny_as_a_function_is_rejected() {
    let rego = "package main\nimport rego.v1\ndeny(x) := [x]\n";
    match check_contract("team-a/function.rego", rego) {
        Err(err @ Error::DenyIsAFunction { .. }) => {
            assert!(err.to_string().contains("deny contains msg if"), "{err}");
        }
        other => panic!("expected DenyIsAFunction, got {other:?}"),
    }
}

#[test]
fn a_policy_can_deny_a_scan_the_scanner_could_not_finish_reading() -> Result<()> {
    let policy = compile(
        r#"package main
import rego.v1

deny contains msg if {
	count(input.scanErrors) > 0
	msg := sprintf("incomplete scan: %s", [input.scanErrors[0]])
}
"#,
    )?;
    let mut report = crate::report::Report::default();
    // A complete scan has no scanErrors key: the rule is undefined, nothing is denied.
    assert!(
        policy
            .evaluate(&serde_json::to_value(&report).unwrap_or_default())?
            .is_compliant()
    );
    report.scan_errors = vec!["layer sha256:0f could not be read".into()];
    assert_eq!(
        policy
            .evaluate(&serde_json::to_value(&report).unwrap_or_default())?
            .deny,
        ["incomplete scan: layer sha256:0f could not be read"]
    );
    Ok(())
}
