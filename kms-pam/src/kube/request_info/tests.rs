use http::Method;

use super::*;

/// Parses an expectation: `VERB` for a non-resource request, or
/// `VERB GROUP/VERSION|VERSION NAMESPACE|- RESOURCE [NAME|- [SUBRESOURCE]]`.
fn expected(spec: &str) -> RequestInfo {
    let words: Vec<&str> = spec.split(' ').collect();
    let field = |i: usize| words.get(i).filter(|w| **w != "-").map(|w| w.to_string());
    let mut info = RequestInfo::non_resource(&Method::GET);
    info.verb = Verb::from(words[0]);
    let Some(group_version) = words.get(1) else {
        return info;
    };
    let (prefix, group, version) = match group_version.split_once('/') {
        Some((group, version)) => ("apis", group, version),
        None => ("api", "", *group_version),
    };
    RequestInfo {
        is_resource_request: true,
        api_prefix: prefix.into(),
        api_group: group.into(),
        api_version: version.into(),
        namespace: field(2),
        resource: field(3),
        name: field(4),
        subresource: field(5),
        ..info
    }
}

fn classify(method: &str, target: &str) -> RequestInfo {
    let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    RequestInfo::classify(&method, path, query)
}

/// Rows of `METHOD PATH[?QUERY] => EXPECTATION` (see [`expected`]).
fn check(rows: &[&str]) {
    for row in rows {
        let (request, spec) = row.split_once(" => ").unwrap_or((row, "?"));
        let (method, target) = request.split_once(' ').unwrap_or((request, ""));
        assert_eq!(classify(method, target), expected(spec), "{row}");
    }
}

#[test]
fn kubectl_discovery_and_non_resource_paths() {
    check(&[
        "GET /api?timeout=32s => get",
        "GET /apis?timeout=32s => get",
        "GET /api/v1?timeout=32s => get",
        "GET /apis/apps/v1?timeout=32s => get",
        "GET /apis/apps => get",
        "GET /openapi/v3 => get",
        "GET /openapi/v3/apis/apps/v1?hash=AB12 => get",
        "GET /openapi/v2 => get",
        "GET /version?timeout=32s => get",
        "GET /healthz => get",
        "GET /readyz?verbose => get",
        "HEAD /livez => head",
        "OPTIONS / => options",
        "POST /logs => post",
        "PUT /x => put",
        "PATCH /x => patch",
        "DELETE /x => delete",
        "TRACE / => trace",
        "PURGE / => purge",
        "GET  => get",
    ]);
    assert_eq!(classify("TRACE", "/").verb, Verb::Other("trace".into()));
}

#[test]
fn kubectl_core_resource_paths() {
    check(&[
        "GET /api/v1/namespaces/default/pods?limit=500 => list v1 default pods",
        "GET /api/v1/namespaces/default/pods?resourceVersion=123&watch=true => watch v1 default pods",
        // kubectl get pod nginx -w
        "GET /api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Dnginx&watch=true => watch v1 default pods nginx",
        "GET /api/v1/namespaces/default/pods/nginx-1 => get v1 default pods nginx-1",
        "HEAD /api/v1/namespaces/default/pods => list v1 default pods",
        "POST /api/v1/namespaces/default/configmaps => create v1 default configmaps",
        "DELETE /api/v1/namespaces/default/configmaps?labelSelector=app%3Dweb => deletecollection v1 default configmaps",
        "DELETE /api/v1/namespaces/default/configmaps/cm => delete v1 default configmaps cm",
        "GET /api/v1/nodes => list v1 - nodes",
        "GET /api/v1/nodes/node-1 => get v1 - nodes node-1",
        "GET /api/v1/namespaces => list v1 - namespaces",
        "DELETE /api/v1/namespaces => deletecollection v1 - namespaces",
        // The namespace object is in its own namespace, as the API server has it.
        "GET /api/v1/namespaces/kube-system => get v1 kube-system namespaces kube-system",
        "PUT /api/v1/namespaces/kube-system/finalize => update v1 kube-system namespaces kube-system finalize",
        "PATCH /api/v1/namespaces/kube-system/status => patch v1 kube-system namespaces kube-system status",
        "POST /api/v1/namespaces/default/pods/nginx-1/eviction => create v1 default pods nginx-1 eviction",
        "POST /api/v1/namespaces/default/serviceaccounts/default/token => create v1 default serviceaccounts default token",
        "PATCH /api/v1/namespaces/default/pods/nginx-1/ephemeralcontainers => patch v1 default pods nginx-1 ephemeralcontainers",
        "OPTIONS /api/v1/nodes => options v1 - nodes",
    ]);
}

#[test]
fn kubectl_streaming_subresources() {
    let (kubevirt, vmi) = ("subresources.kubevirt.io/v1", "virtualmachineinstances");
    let pod = "/api/v1/namespaces/default/pods/nginx-1";
    check(&[
        &format!("GET {pod}/log?container=nginx&follow=true => log v1 default pods nginx-1 log"),
        &format!("GET {pod}/exec?command=echo&command=hello&stderr=true&stdout=true => exec v1 default pods nginx-1 exec"),
        // The SPDY fallback.
        &format!("POST {pod}/exec?command=sh => exec v1 default pods nginx-1 exec"),
        &format!("POST {pod}/attach?stdin=true => attach v1 default pods nginx-1 attach"),
        &format!("GET {pod}/portforward => portforward v1 default pods nginx-1 portforward"),
        &format!("POST {pod}:8080/proxy/ => proxy v1 default pods nginx-1:8080 proxy"),
        "GET /api/v1/namespaces/default/services/http:web:8080/proxy/x => proxy v1 default services http:web:8080 proxy",
        "GET /api/v1/nodes/node-1/proxy/metrics => proxy v1 - nodes node-1 proxy",
        &format!("GET /apis/{kubevirt}/namespaces/default/{vmi}/vm/console => connect {kubevirt} default {vmi} vm console"),
    ]);
}

#[test]
fn grouped_and_aggregated_paths() {
    let deploy = "/apis/apps/v1/namespaces/default/deployments/nginx";
    check(&[
        &format!("GET {deploy} => get apps/v1 default deployments nginx"),
        &format!("PATCH {deploy}?fieldManager=kubectl => patch apps/v1 default deployments nginx"),
        &format!("GET {deploy}/scale => get apps/v1 default deployments nginx scale"),
        &format!("PUT {deploy}/scale => update apps/v1 default deployments nginx scale"),
        "GET /apis/metrics.k8s.io/v1beta1/namespaces/default/pods => list metrics.k8s.io/v1beta1 default pods",
        "GET /apis/metrics.k8s.io/v1beta1/nodes/node-1 => get metrics.k8s.io/v1beta1 - nodes node-1",
        "POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews => create authorization.k8s.io/v1 - selfsubjectaccessreviews",
        "GET /apis/example.com/v1/namespaces/ns/widgets/w1/status => get example.com/v1 ns widgets w1 status",
    ]);
}

#[test]
fn legacy_watch_and_proxy_prefixes() {
    check(&[
        "GET /api/v1/watch/namespaces/default/pods => watch v1 default pods",
        "GET /api/v1/watch/namespaces/default/pods/nginx => watch v1 default pods nginx",
        "GET /apis/apps/v1/watch/deployments => watch apps/v1 - deployments",
        // Everything after the name is the proxied path, not a subresource.
        "GET /api/v1/proxy/namespaces/default/pods/nginx/exec/x => proxy v1 default pods nginx",
        "GET /api/v1/watch => get",
        "GET /api/v1/proxy/ => get",
    ]);
}

#[test]
fn watch_parameter_reads_like_the_api_server() {
    let pods = "/api/v1/namespaces/default/pods";
    check(&[
        &format!("GET {pods}?watch=1 => watch v1 default pods"),
        &format!("GET {pods}?watch=TRUE&watch=false => watch v1 default pods"),
        &format!("GET {pods}?watch=false&watch=true => list v1 default pods"),
        &format!("GET {pods}?watch=FALSE => list v1 default pods"),
        &format!("GET {pods}?watch=0 => list v1 default pods"),
        &format!("GET {pods}?watch => watch v1 default pods"),
        &format!("GET {pods}?watch=+ => watch v1 default pods"),
        &format!("GET {pods}?wat%63h=true => watch v1 default pods"),
        // Go drops undecodable pairs and keys with `;`: no watch parameter at all.
        &format!("GET {pods}?&&=&watch=%ZZ&watch;x=1&; => list v1 default pods"),
        &format!("GET {pods}?watch=%ZZ&watch=true => watch v1 default pods"),
        &format!("GET {pods}? => list v1 default pods"),
        // watch only turns a collection GET into a watch.
        &format!("DELETE {pods}?watch=true => deletecollection v1 default pods"),
        &format!("GET {pods}/p?watch=true => get v1 default pods p"),
    ]);
}

#[test]
fn odd_and_malformed_paths() {
    let pods = "/api/v1/namespaces/default/pods";
    check(&[
        "GET //api//v1 => get",
        "GET /api/v1/namespaces/ => list v1 - namespaces",
        &format!("GET {pods}/nginx/ => get v1 default pods nginx"),
        &format!("GET //{pods}/nginx/// => get v1 default pods nginx"),
        &format!("GET {pods}//nginx => get"),
        "GET /api/v1/namespaces//pods => get",
        "GET /api/v1/namespaces/./pods => get",
        &format!("GET {pods}/.. => get"),
        &format!("GET {pods}/../secrets => get"),
        "GET /api/v1/namespaces/%2e%2e/pods => get",
        &format!("GET {pods}/%ZZ => get"),
        &format!("GET {pods}/%4 => get"),
        &format!("GET {pods}/% => get"),
        &format!("GET {pods}/%FF%FE => get"),
        &format!("GET {pods}/ngin%78 => get v1 default pods nginx"),
        &format!("GET {pods}/h%C3%A9llo => get v1 default pods h\u{e9}llo"),
        &format!("GET {pods}/h\u{e9}llo => get v1 default pods h\u{e9}llo"),
        &format!("GET {pods}/\u{1F980} => get v1 default pods \u{1F980}"),
        // Go decodes before splitting, so the API server execs here; the audit must say so.
        &format!("POST {pods}/nginx%2Fexec => exec v1 default pods nginx exec"),
        "GET /api%2Fv1%2Fnodes => list v1 - nodes",
    ]);
}

#[test]
fn huge_paths() {
    let pod = "/api/v1/namespaces/default/pods/nginx";
    check(&[
        &format!(
            "GET {pod}/proxy/{} => proxy v1 default pods nginx proxy",
            "a/".repeat(5_000)
        ),
        &format!(
            "GET {pod}/log/{} => log v1 default pods nginx log",
            "%41".repeat(3_400)
        ),
        &format!("GET {} => get", "/".repeat(10_000)),
        &format!("GET /{} => get", "x".repeat(10_000)),
        &format!("GET /api/{} => get v1 - v1 v1 v1", "v1/".repeat(3_400)),
    ]);
}

#[test]
fn nasty_inputs_never_panic() {
    let paths = [
        "",
        "/",
        "//",
        "%",
        "%%",
        "%2",
        "%2F",
        "/%2F%2F%2F",
        "/api",
        "/api/",
        "/api/%",
        "/apis/%C3",
        "/api/v1/%C3%28",
        "/api/v1/namespaces/%E2%82",
        "/api/v1/namespaces/d/pods/%F0%9F%A6",
        "/api/v1/namespaces/d/pods/%F0%9F%A6%80",
        "/api/v1/watch/",
        "/api/v1/watch/namespaces",
        "/api/v1/watch/namespaces/",
        "/api/v1/proxy/namespaces/x",
        "/apis/./../v1/x",
        "/api/v1/namespaces/x/pods/y/log/%",
        "\u{0}/api/v1/nodes",
        "/api/v1/nodes\u{0}",
        "/api/v1/\u{FFFD}/\u{FFFD}",
        "?",
        "#",
        "/api/v1/nodes?watch=true",
        "api/v1/nodes",
        "/api/v1/namespaces/default/pods/a\\b",
        "/api/v1/namespaces/%2e%2e/pods",
        "/%%2F/%2%F",
    ];
    let queries = [
        None,
        Some(""),
        Some("&"),
        Some("="),
        Some("=&="),
        Some("%"),
        Some("watch=%FF"),
        Some("follow=%"),
        Some("fieldSelector=%"),
        Some("fieldSelector=metadata.name%3D%5C"),
        Some("fieldSelector=metadata.name%3D%C3%28"),
        Some("fieldSelector=%3D%3D%3D"),
        Some("fieldSelector=!%3D,%2C%2C,%5C%5C"),
        Some("watch&watch&watch&follow&follow"),
        Some("follow=%E2%82"),
        Some(";;;=;"),
    ];
    let methods = ["GET", "POST", "DELETE", "CONNECT", "TRACE", "PURGE"];
    for path in paths {
        for query in queries {
            for method in methods {
                let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
                let info = RequestInfo::classify(&method, path, query);
                let _ = info.stream_kind(query);
                if !info.is_resource_request {
                    assert!(
                        info.api_prefix.is_empty() && info.resource.is_none(),
                        "{path}"
                    );
                }
            }
        }
    }
}

#[test]
fn stream_kinds() {
    let kind = |method: &str, target: &str| {
        let query = target.split_once('?').map(|(_, query)| query);
        classify(method, target).stream_kind(query)
    };
    let pod = "/api/v1/namespaces/default/pods/nginx-1";
    let cases = [
        (
            "GET",
            "/api/v1/namespaces/default/pods?watch=true",
            Some(StreamKind::Watch),
        ),
        ("GET", "/api/v1/watch/pods", Some(StreamKind::Watch)),
        ("GET", "/api/v1/namespaces/default/pods", None),
        (
            "GET",
            &format!("{pod}/log?container=nginx&follow=true"),
            Some(StreamKind::LogFollow),
        ),
        (
            "GET",
            &format!("{pod}/log?follow=1"),
            Some(StreamKind::LogFollow),
        ),
        ("GET", &format!("{pod}/log?follow=false"), None),
        ("GET", &format!("{pod}/log?tailLines=10"), None),
        ("GET", &format!("{pod}/log"), None),
        (
            "GET",
            &format!("{pod}/exec?command=ls"),
            Some(StreamKind::Exec),
        ),
        ("POST", &format!("{pod}/attach"), Some(StreamKind::Attach)),
        (
            "GET",
            &format!("{pod}/portforward"),
            Some(StreamKind::PortForward),
        ),
        ("GET", &format!("{pod}/proxy/x"), Some(StreamKind::Proxy)),
        ("GET", &format!("{pod}?follow=true"), None),
        ("GET", "/healthz?watch=true", None),
    ];
    for (method, target, want) in cases {
        assert_eq!(kind(method, target), want, "{method} {target}");
    }
    let exec = format!("{pod}/exec");
    assert_eq!(
        is_streaming(&Method::POST, &exec, None),
        Some(StreamKind::Exec)
    );
}

#[test]
fn field_selector_names_like_the_api_server() {
    use query::selector_name as name;
    assert_eq!(name("metadata.name=nginx").as_deref(), Some("nginx"));
    assert_eq!(name("metadata.name==nginx").as_deref(), Some("nginx"));
    assert_eq!(
        name("status.phase=Running,metadata.name=web").as_deref(),
        Some("web")
    );
    // Terms are sorted before the search.
    assert_eq!(
        name("metadata.name=b,metadata.name=a").as_deref(),
        Some("a")
    );
    assert_eq!(name(",metadata.name=a,").as_deref(), Some("a"));
    assert_eq!(name(r"metadata.name=a\,b").as_deref(), Some("a,b"));
    assert_eq!(name(r"metadata.name=a\=b\\c").as_deref(), Some(r"a=b\c"));
    for no_name in [
        "",
        ",",
        "metadata.name!=nginx",
        "spec.nodeName=n1",
        "metadata.name=",
        "metadata.name=..",
        "metadata.name=a/b",
        "metadata.name=a%41",
        r"metadata.name=a\x",
        r"metadata.name=a\",
        "metadata.name=a=b",
        "metadata.name=a,garbage",
        "metadata.name=a,x=b=c",
        "metadata.namespace=a",
    ] {
        assert_eq!(name(no_name), None, "{no_name}");
    }
}

#[test]
fn verbs_serialize_as_lowercase_strings() -> Result<(), serde_json::Error> {
    use Verb::*;
    let all = [
        Get,
        List,
        Watch,
        Create,
        Update,
        Patch,
        Delete,
        DeleteCollection,
        Exec,
        Attach,
        PortForward,
        Log,
        Proxy,
        Connect,
        Post,
        Put,
        Head,
        Options,
        Other("trace".into()),
    ];
    for verb in all {
        let json = serde_json::to_string(&verb)?;
        assert_eq!(json, format!("\"{}\"", verb.as_str()));
        assert_eq!(verb.to_string(), verb.as_str());
        assert_eq!(serde_json::from_str::<Verb>(&json)?, verb);
        assert_eq!(Verb::from(verb.as_str()), verb);
    }
    assert_eq!(DeleteCollection.as_str(), "deletecollection");
    assert_eq!(PortForward.as_str(), "portforward");
    assert_eq!(
        serde_json::from_str::<Verb>("\"frobnicate\"")?,
        Other("frobnicate".into())
    );
    Ok(())
}

#[test]
fn request_info_round_trips_through_json() -> Result<(), serde_json::Error> {
    let info = classify(
        "GET",
        "/apis/apps/v1/namespaces/default/deployments/nginx/scale",
    );
    let json = serde_json::to_value(&info)?;
    assert_eq!(json["verb"], "get");
    assert_eq!(json["api_group"], "apps");
    assert_eq!(json["subresource"], "scale");
    assert_eq!(serde_json::from_value::<RequestInfo>(json)?, info);
    Ok(())
}

#[test]
fn stream_kinds_have_stable_names() -> Result<(), serde_json::Error> {
    use StreamKind::*;
    for kind in [Watch, LogFollow, Exec, Attach, PortForward, Proxy, Connect] {
        assert_eq!(serde_json::to_string(&kind)?, format!("\"{kind}\""));
    }
    Ok(())
}
