//! The admission policy's CEL expressions (`runtimeclass/admission-policy.yaml`)
//! evaluated on pods, with a CEL interpreter: what a namespace labelled
//! `strict-groups.io/enforce=true` admits and refuses.

use cel_interpreter::{Context, Program, Value};
use serde_json::json;

fn validations() -> Vec<(String, String)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/runtimeclass/admission-policy.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let policy: serde_json::Value = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .find(|d: &serde_json::Value| d["kind"] == "ValidatingAdmissionPolicy")
        .unwrap();
    policy["spec"]["validations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["expression"].as_str().unwrap().to_string(),
                v["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The messages of the validations `pod` fails.
fn refusals(pod: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for (expression, message) in validations() {
        let program =
            Program::compile(&expression).unwrap_or_else(|e| panic!("{expression}: {e:?}"));
        let mut ctx = Context::default();
        ctx.add_variable("object", pod.clone()).unwrap();
        match program.execute(&ctx) {
            Ok(Value::Bool(true)) => {}
            Ok(Value::Bool(false)) => out.push(message),
            other => panic!("{expression} on {pod}: {other:?}"),
        }
    }
    out
}

fn pod(runtime_class: Option<&str>, annotations: Option<serde_json::Value>) -> serde_json::Value {
    let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}});
    if let Some(rc) = runtime_class {
        pod["spec"]["runtimeClassName"] = json!(rc);
    }
    if let Some(a) = annotations {
        pod["metadata"]["annotations"] = a;
    }
    pod
}

#[test]
fn enforced_namespaces_admit_only_strict_pods_without_runtime_annotations() {
    let ok = [
        pod(Some("strict-groups"), None),
        pod(Some("strict-groups"), Some(json!({}))),
        pod(
            Some("strict-groups"),
            Some(
                json!({"strict-groups.io/supplemental-groups-policy": "Strict", "example.com/x": "y"}),
            ),
        ),
    ];
    for p in &ok {
        assert_eq!(refusals(p), Vec::<String>::new(), "{p}");
    }
    let refused = [
        (pod(None, None), "must set runtimeClassName"),
        (pod(Some("runc"), None), "must set runtimeClassName"),
        (
            pod(
                Some("strict-groups"),
                Some(json!({"strict-groups.io/supplemental-groups-policy": "Merge"})),
            ),
            "may only be Strict",
        ),
        (
            pod(
                Some("strict-groups"),
                Some(json!({"io.kubernetes.cri-o.ContainerType": "sandbox"})),
            ),
            "belong to the container runtime",
        ),
        (
            pod(
                Some("strict-groups"),
                Some(json!({"io.kubernetes.cri.container-type": "sandbox"})),
            ),
            "belong to the container runtime",
        ),
    ];
    for (p, why) in &refused {
        let got = refusals(p);
        assert!(got.iter().any(|m| m.contains(why)), "{p}: {got:?}");
    }
}
