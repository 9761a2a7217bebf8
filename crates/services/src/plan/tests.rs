use ferro_cluster::k8s_openapi::api::core::v1::Service;
use serde_json::json;

use super::*;
use crate::fixtures::{cluster, planned, svc};

#[test]
fn the_golden_table() {
    let (s, p, a) = cluster();
    let got = planned(&s, &p, &a).render();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/plan.nft");
    if std::env::var_os("FERRO_UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &got).unwrap();
    }
    let want = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        got == want,
        "the planned table differs from {path} (FERRO_UPDATE_GOLDEN=1 rewrites it):\n{got}"
    );
}

#[test]
fn one_lookup_per_packet_whatever_the_number_of_services() {
    let (_, p, a) = cluster();
    let many: Vec<Service> = (0..200)
        .map(|i| {
            svc(
                "shop",
                &format!("s{i}"),
                json!({"selector":{"app":"web"},"clusterIP":format!("10.96.1.{}", i % 250),"ports":[{"port":80,"targetPort":8080}]}),
            )
        })
        .collect();
    let small = planned(&many[..1], &p, &a);
    let big = planned(&many, &p, &a);
    // The chain every packet walks has the same rules; only map elements grew.
    assert_eq!(small.chains["services"], big.chains["services"]);
    assert_eq!(big.elems["service-ips"].len(), 200);
}

#[test]
fn every_port_and_protocol_of_a_service_and_nothing_for_headless_or_external_names() {
    let (s, p, a) = cluster();
    let r = planned(&s, &p, &a).render();
    // One entry per port and protocol in the one lookup map, each to its own chain.
    for key in [
        "10.96.0.15 . udp . 53 : goto svc-",
        "10.96.0.15 . tcp . 53 : goto svc-",
        "10.96.0.15 . sctp . 3868 : goto svc-",
    ] {
        assert_eq!(r.matches(key).count(), 1, "{key} in\n{r}");
    }
    // Targets by name resolved from the pod's ports of that protocol, by number as given.
    for rule in [
        "meta l4proto udp dnat ip to 10.244.2.8:5353",
        "meta l4proto tcp dnat ip to 10.244.2.8:5353",
        "meta l4proto sctp dnat ip to 10.244.2.8:3868",
    ] {
        assert_eq!(r.matches(rule).count(), 1, "{rule} in\n{r}");
    }
    // Headless and ExternalName services have no address to program.
    assert!(
        !r.contains("shop/headless") && !r.contains("shop/alias"),
        "{r}"
    );
}

#[test]
fn names_stay_within_the_kernel_limits_and_apart() {
    let long = "x".repeat(300);
    let a = object_name("ep", &format!("{long}a"));
    let b = object_name("ep", &format!("{long}b"));
    assert!(a.len() <= 240 && b.len() <= 240);
    assert_ne!(a, b, "the hash keeps cut names apart");
    assert!(object_name("svc", "shop/web/tcp/http").starts_with("svc-"));
}
