//! Reads `deploy/`'s kustomize sources and combines them as `kubectl
//! kustomize` does, for what the manifest tests look at: the resources, the
//! generated ConfigMaps' data and Secrets' sources, with the overlays'
//! patches and the kustomizations' labels applied (the `part-of` label says
//! which app an object belongs to, and `make up APPS=...` selects by it).
//!
//! Patches are merged with the part of strategic merge these overlays use:
//! maps merge, lists of named items merge by name, other lists are replaced,
//! `null` removes a field. A kustomization field this reader does not know
//! fails the tests rather than being ignored. `make check-manifests` renders
//! the same sources with the real kustomize and validates that output.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use serde_json::Value;

/// Fields this reader understands; `namespace` changes nothing the tests
/// look at.
const KNOWN_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "namespace",
    "labels",
    "resources",
    "configMapGenerator",
    "secretGenerator",
    "patches",
];

/// `deploy/` in this repository.
pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// A kustomization, combined.
#[derive(Debug, Default)]
pub struct Rendered {
    /// Every resource, patched.
    pub resources: Vec<Value>,
    /// Generated ConfigMaps: name (without the hash suffix) → data.
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// Generated Secrets: name → the env file their data comes from.
    pub secrets: BTreeMap<String, PathBuf>,
    /// The labels of the generated ConfigMaps and Secrets: (kind, name) →
    /// labels.
    pub generated_labels: BTreeMap<(String, String), BTreeMap<String, String>>,
}

/// The label that tells the apps apart, and the platform they share.
pub const PART_OF: &str = "app.kubernetes.io/part-of";

impl Rendered {
    /// The resource of `kind` called `name`.
    pub fn get(&self, kind: &str, name: &str) -> &Value {
        self.resources
            .iter()
            .find(|resource| resource["kind"] == kind && resource["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in the manifests"))
    }

    /// What `make up APPS=<apps>` applies: the objects labelled part of the
    /// platform or of one of `apps`.
    pub fn only(&self, apps: &[&str]) -> Rendered {
        let wanted = |part_of: Option<&str>| {
            part_of.is_some_and(|part| part == "platform" || apps.contains(&part))
        };
        let generated = |kind: &str, name: &str| {
            let key = (kind.to_owned(), name.to_owned());
            wanted(
                self.generated_labels
                    .get(&key)
                    .and_then(|labels| labels.get(PART_OF))
                    .map(String::as_str),
            )
        };
        Rendered {
            resources: self
                .resources
                .iter()
                .filter(|resource| wanted(resource["metadata"]["labels"][PART_OF].as_str()))
                .cloned()
                .collect(),
            config_maps: self
                .config_maps
                .iter()
                .filter(|(name, _)| generated("ConfigMap", name))
                .map(|(name, data)| (name.clone(), data.clone()))
                .collect(),
            secrets: self
                .secrets
                .iter()
                .filter(|(name, _)| generated("Secret", name))
                .map(|(name, path)| (name.clone(), path.clone()))
                .collect(),
            generated_labels: self
                .generated_labels
                .iter()
                .filter(|((kind, name), _)| generated(kind, name))
                .map(|(key, labels)| (key.clone(), labels.clone()))
                .collect(),
        }
    }
}

/// Combines the kustomization in `dir` (`deploy/overlays/dev`, say).
pub fn render(dir: &Path) -> Rendered {
    let path = dir.join("kustomization.yaml");
    let kustomization = read_yaml(&path)
        .pop()
        .unwrap_or_else(|| panic!("{} is empty", path.display()));
    for field in kustomization.as_object().into_iter().flat_map(|o| o.keys()) {
        assert!(
            KNOWN_FIELDS.contains(&field.as_str()),
            "{}: the manifest tests do not read `{field}`; teach tests/api/kustomize.rs",
            path.display()
        );
    }

    let mut rendered = Rendered::default();
    for entry in strings(&kustomization["resources"]) {
        let resource = dir.join(entry);
        if resource.is_dir() {
            let inner = render(&resource);
            rendered.resources.extend(inner.resources);
            rendered.config_maps.extend(inner.config_maps);
            rendered.secrets.extend(inner.secrets);
            rendered.generated_labels.extend(inner.generated_labels);
        } else {
            rendered.resources.extend(read_yaml(&resource));
        }
    }
    for generator in items(&kustomization["configMapGenerator"]) {
        generate_config_map(dir, generator, &mut rendered.config_maps);
        let key = ("ConfigMap".to_owned(), text(&generator["name"]).to_owned());
        rendered.generated_labels.entry(key).or_default();
    }
    for generator in items(&kustomization["secretGenerator"]) {
        let name = text(&generator["name"]);
        let envs = strings(&generator["envs"]);
        assert_eq!(envs.len(), 1, "secret {name}: one env file expected");
        rendered.secrets.insert(name.to_owned(), dir.join(envs[0]));
        let key = ("Secret".to_owned(), name.to_owned());
        rendered.generated_labels.entry(key).or_default();
    }
    for labels in items(&kustomization["labels"]) {
        apply_labels(&mut rendered, labels);
    }
    for patch in items(&kustomization["patches"]) {
        assert!(
            patch.get("target").is_none() && patch.get("patch").is_none(),
            "{}: the manifest tests read strategic-merge patches from files only: {patch}",
            path.display()
        );
        for document in read_yaml(&dir.join(text(&patch["path"]))) {
            apply_patch(&mut rendered.resources, &document);
        }
    }
    rendered
}

fn generate_config_map(
    dir: &Path,
    generator: &Value,
    config_maps: &mut BTreeMap<String, BTreeMap<String, String>>,
) {
    let name = text(&generator["name"]).to_owned();
    let mut data = BTreeMap::new();
    for literal in strings(&generator["literals"]) {
        let (key, value) = literal
            .split_once('=')
            .unwrap_or_else(|| panic!("configMap {name}: `{literal}` is not KEY=VALUE"));
        data.insert(key.to_owned(), value.to_owned());
    }
    for file in strings(&generator["files"]) {
        let (key, source) = file.split_once('=').unwrap_or_else(|| {
            let key = Path::new(file).file_name().and_then(|n| n.to_str());
            (key.expect("a file name"), file)
        });
        let content = fs::read_to_string(dir.join(source))
            .unwrap_or_else(|err| panic!("configMap {name}: {source}: {err}"));
        data.insert(key.to_owned(), content);
    }
    match generator["behavior"].as_str().unwrap_or("create") {
        "create" => {
            let previous = config_maps.insert(name.clone(), data);
            assert!(previous.is_none(), "configMap {name} is generated twice");
        }
        "merge" => config_maps
            .get_mut(&name)
            .unwrap_or_else(|| panic!("configMap {name}: nothing to merge into"))
            .extend(data),
        "replace" => {
            let previous = config_maps.insert(name.clone(), data);
            assert!(previous.is_some(), "configMap {name}: nothing to replace");
        }
        other => panic!("configMap {name}: unknown behavior {other}"),
    }
}

/// A `labels` entry: its pairs on every object so far, and with
/// `includeTemplates` on the pods' (and volume claims') templates too.
fn apply_labels(rendered: &mut Rendered, labels: &Value) {
    let pairs = labels["pairs"]
        .as_object()
        .unwrap_or_else(|| panic!("labels without pairs: {labels}"));
    let templates = labels["includeTemplates"] == true;
    let set = |target: &mut Value| {
        for (key, value) in pairs {
            target[key] = value.clone();
        }
    };
    for resource in &mut rendered.resources {
        set(&mut resource["metadata"]["labels"]);
        if !templates {
            continue;
        }
        let kind = resource["kind"].as_str().unwrap_or_default().to_owned();
        let Some(spec) = resource.get_mut("spec") else {
            continue;
        };
        match kind.as_str() {
            "Deployment" | "StatefulSet" | "DaemonSet" | "Job" => {
                set(&mut spec["template"]["metadata"]["labels"]);
            }
            "CronJob" => {
                set(&mut spec["jobTemplate"]["spec"]["template"]["metadata"]["labels"]);
            }
            _ => {}
        }
        if let Some(claims) = spec
            .get_mut("volumeClaimTemplates")
            .and_then(Value::as_array_mut)
        {
            for claim in claims {
                set(&mut claim["metadata"]["labels"]);
            }
        }
    }
    for generated in rendered.generated_labels.values_mut() {
        for (key, value) in pairs {
            generated.insert(key.clone(), text(value).to_owned());
        }
    }
}

fn apply_patch(resources: &mut [Value], patch: &Value) {
    let target = resources
        .iter_mut()
        .find(|resource| {
            resource["kind"] == patch["kind"]
                && resource["metadata"]["name"] == patch["metadata"]["name"]
        })
        .unwrap_or_else(|| panic!("a patch matches no resource: {patch}"));
    merge(target, patch);
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else if let Some(existing) = target.get_mut(key) {
                    merge(existing, value);
                } else {
                    target.insert(key.clone(), value.clone());
                }
            }
        }
        (Value::Array(target), Value::Array(patch))
            if patch.iter().all(|item| item.get("name").is_some()) =>
        {
            for item in patch {
                match target
                    .iter_mut()
                    .find(|t| t.get("name") == item.get("name"))
                {
                    Some(existing) => merge(existing, item),
                    None => target.push(item.clone()),
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// Every YAML document in `path`.
pub fn read_yaml(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| {
            Value::deserialize(document)
                .unwrap_or_else(|err| panic!("{}: not YAML: {err}", path.display()))
        })
        .filter(|document| !document.is_null())
        .collect()
}

/// The items of a list field (none when absent).
pub fn items(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// A string field, which must be there.
pub fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, got {value}"))
}

fn strings(value: &Value) -> Vec<&str> {
    items(value).iter().map(text).collect()
}

#[test]
fn patches_merge_named_items_by_name_and_replace_other_lists() {
    let mut target = serde_json::json!({
        "spec": {"replicas": 1, "containers": [
            {"name": "a", "args": ["x"], "env": [{"name": "K", "value": "1"}]},
            {"name": "b"}
        ]}
    });
    merge(
        &mut target,
        &serde_json::json!({
            "spec": {"replicas": null, "containers": [
                {"name": "a", "args": ["y", "z"], "env": [{"name": "L", "value": "2"}]}
            ]}
        }),
    );
    assert_eq!(
        target,
        serde_json::json!({
            "spec": {"containers": [
                {"name": "a", "args": ["y", "z"], "env": [{"name": "K", "value": "1"}, {"name": "L", "value": "2"}]},
                {"name": "b"}
            ]}
        })
    );
}
