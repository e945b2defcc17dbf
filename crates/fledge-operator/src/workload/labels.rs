//! Which labels and annotations travel from the target to its `-primary` copies, and how
//! the selector label is renamed (Flagger's `getSelectorLabel`, `includeLabelsByPrefix`,
//! `makePrimaryLabels`).

use std::collections::BTreeMap;

/// Keys containing this marker belong to Flux and never travel to generated objects.
const TOOLKIT_MARKER: &str = "toolkit.fluxcd.io";

/// `kubectl apply`'s record of the user's manifest: copying it to an object the user never
/// applied would make a later `kubectl apply` of that object compute a wrong three-way merge.
const KUBECTL_LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Flagger's default `-selector-labels`.
pub const DEFAULT_SELECTOR_LABELS: [&str; 3] = ["app", "name", "app.kubernetes.io/name"];

/// The suffix of every generated primary object.
pub const PRIMARY_SUFFIX: &str = "-primary";

/// The selector label of a target and its value (`app`, `podinfo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectorLabel {
    /// The label key.
    pub key: String,
    /// The target's value for it.
    pub value: String,
}

impl SelectorLabel {
    /// The value the primary's pods carry (`podinfo-primary`).
    pub fn primary_value(&self) -> String {
        format!("{}{PRIMARY_SUFFIX}", self.value)
    }
}

/// The first of `candidates` present in `match_labels`, in the order of `candidates`.
pub fn find_selector_label(
    match_labels: Option<&BTreeMap<String, String>>,
    candidates: &[String],
) -> Option<SelectorLabel> {
    let match_labels = match_labels?;
    candidates.iter().find_map(|key| {
        match_labels.get(key).map(|value| SelectorLabel {
            key: key.clone(),
            value: value.clone(),
        })
    })
}

/// The entries whose key starts with one of `prefixes` (`*` takes every key); Flux's and
/// `kubectl apply`'s bookkeeping never passes.
pub fn include_by_prefix(
    entries: Option<&BTreeMap<String, String>>,
    prefixes: &[String],
) -> BTreeMap<String, String> {
    entries
        .into_iter()
        .flatten()
        .filter(|(key, _)| !is_bookkeeping(key))
        .filter(|(key, _)| {
            prefixes.iter().any(|prefix| {
                prefix == "*" || (!prefix.is_empty() && key.starts_with(prefix.as_str()))
            })
        })
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// Every entry but Flux's and `kubectl apply`'s bookkeeping.
pub fn without_bookkeeping(entries: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    entries
        .into_iter()
        .flatten()
        .filter(|(key, _)| !is_bookkeeping(key))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// `labels` with the selector label set to the primary's value.
pub fn primary_labels(
    labels: Option<&BTreeMap<String, String>>,
    selector: &SelectorLabel,
) -> BTreeMap<String, String> {
    let mut result = without_bookkeeping(labels);
    result.insert(selector.key.clone(), selector.primary_value());
    result
}

fn is_bookkeeping(key: &str) -> bool {
    key.contains(TOOLKIT_MARKER) || key == KUBECTL_LAST_APPLIED
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn the_first_configured_label_present_in_the_selector_wins() {
        let selector = map(&[("name", "podinfo"), ("app.kubernetes.io/name", "podinfo-x")]);
        let found = find_selector_label(Some(&selector), &strings(&DEFAULT_SELECTOR_LABELS));
        assert_eq!(
            found,
            Some(SelectorLabel {
                key: "name".into(),
                value: "podinfo".into()
            })
        );
        assert_eq!(
            found.map(|l| l.primary_value()).as_deref(),
            Some("podinfo-primary")
        );
        assert_eq!(
            find_selector_label(Some(&selector), &strings(&["app"])),
            None
        );
        assert_eq!(find_selector_label(None, &strings(&["app"])), None);
    }

    #[test]
    fn prefixes_choose_what_is_copied_and_flux_bookkeeping_never_is() {
        let labels = map(&[
            ("app", "podinfo"),
            ("team", "a"),
            ("kustomize.toolkit.fluxcd.io/name", "apps"),
            (KUBECTL_LAST_APPLIED, "{}"),
        ]);
        assert!(include_by_prefix(Some(&labels), &[]).is_empty());
        assert!(include_by_prefix(Some(&labels), &strings(&[""])).is_empty());
        assert_eq!(
            include_by_prefix(Some(&labels), &strings(&["te"])),
            map(&[("team", "a")])
        );
        assert_eq!(
            include_by_prefix(Some(&labels), &strings(&["*"])),
            map(&[("app", "podinfo"), ("team", "a")])
        );
    }

    #[test]
    fn primary_labels_rename_the_selector_label() {
        let selector = SelectorLabel {
            key: "app".into(),
            value: "podinfo".into(),
        };
        let labels = map(&[("app", "podinfo"), ("version", "1")]);
        assert_eq!(
            primary_labels(Some(&labels), &selector),
            map(&[("app", "podinfo-primary"), ("version", "1")])
        );
        assert_eq!(
            primary_labels(None, &selector),
            map(&[("app", "podinfo-primary")])
        );
    }
}
