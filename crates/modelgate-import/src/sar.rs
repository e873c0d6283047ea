//! Authorino's SubjectAccessReview authorization (`kubernetesSubjectAccessReview`,
//! and `kubernetes` as older AuthConfigs name it) → `models[].kubernetes_access`
//! on the model its `resourceAttributes.name` names. Only static attribute
//! values translate; a selector-based one is reported and fails closed.

use crate::State;
use crate::authorino::ValueOrSelector;
use crate::object::Object;
use crate::out::KubeAccess;

/// Who modelgate asks about: the TokenReview username (or a JWT's `sub`).
const USER_SELECTORS: [&str; 3] = [
    "auth.identity.user.username",
    "auth.identity.username",
    "auth.identity.sub",
];

/// A pending `kubernetes_access`, set on its model by [`apply`] once every
/// model (also those from `--upstream`) is known.
#[derive(Debug)]
pub(crate) struct Pending {
    pub id: String,
    pub path: String,
    pub model: String,
    pub access: KubeAccess,
}

pub(crate) fn subject_access_review(obj: &mut Object, st: &mut State<'_>, p: &str) {
    match translate(obj, p) {
        Ok(pending) => {
            obj.note(&mut st.report, p, format!(
                "models[{}].kubernetes_access: the TokenReview username must be allowed to {} {}.{} {}/{} (SubjectAccessReview after the policies allow)",
                pending.model, pending.access.verb, pending.access.resource, pending.access.group,
                pending.access.namespace, pending.access.name));
            st.kube_access.push(Pending {
                id: obj.id.clone(),
                path: p.to_string(),
                ..pending
            });
        }
        Err((path, why)) => {
            st.authz_blocked = true;
            obj.drop(
                &mut st.report,
                &path,
                format!("{why}; no caller is let through by a default allow (fail closed)"),
            );
            obj.used(p);
        }
    }
}

/// The review, or the path and reason it cannot be translated.
fn translate(obj: &mut Object, p: &str) -> Result<Pending, (String, String)> {
    let user_path = format!("{p}.user");
    let user: ValueOrSelector = obj
        .at(&user_path)
        .and_then(|v| yaml_serde::from_value(v.clone()).ok())
        .unwrap_or_default();
    match (user.selector(), &user.value) {
        (Some(sel), _) if USER_SELECTORS.contains(&sel) => obj.used(&user_path),
        (Some(sel), _) => {
            return Err((user_path, format!("user from `{sel}`: modelgate reviews the TokenReview username (`auth.identity.user.username`) only")));
        }
        (None, Some(_)) => {
            return Err((user_path, "a fixed user: modelgate reviews the caller's own TokenReview username".into()));
        }
        (None, None) => return Err((user_path, "no user: modelgate reviews the TokenReview username; add `user: {selector: auth.identity.user.username}`".into())),
    }
    let groups = format!("{p}.authorizationGroups");
    if obj.at(&groups).is_some() {
        return Err((
            groups,
            "modelgate sends the caller's own groups (from the TokenReview), not these".into(),
        ));
    }
    let ra = format!("{p}.resourceAttributes");
    if obj.at(&ra).is_none() {
        return Err((
            p.to_string(),
            "no resourceAttributes (a non-resource review): modelgate reviews a resource per model"
                .into(),
        ));
    }
    let mut field = |key: &str| -> Result<Option<String>, (String, String)> {
        let path = format!("{ra}.{key}");
        let Some(v) = obj.at(&path) else {
            return Ok(None);
        };
        let v: ValueOrSelector = yaml_serde::from_value(v.clone()).unwrap_or_default();
        if let Some(sel) = v.selector() {
            return Err((
                path,
                format!(
                    "selector-based {key} (`{sel}`): modelgate sends fixed resourceAttributes; write the value (`{key}: {{value: ...}}`)"
                ),
            ));
        }
        match v.value.as_ref().and_then(|x| x.as_str()) {
            Some(s) => {
                obj.used(&path);
                Ok(Some(s.to_string()))
            }
            None => Err((path, format!("{key} is not a string `value`"))),
        }
    };
    let namespace = field("namespace")?;
    let name = field("name")?;
    let access = KubeAccess {
        verb: field("verb")?.unwrap_or_default(),
        group: field("group")?.unwrap_or_default(),
        resource: field("resource")?.unwrap_or_default(),
        subresource: field("subresource")?.filter(|s| !s.is_empty()),
        namespace: namespace.unwrap_or_default(),
        name: name.clone().unwrap_or_default(),
    };
    let Some(model) = name.filter(|n| !n.is_empty()) else {
        return Err((format!("{ra}.name"), "no name: Authorino reviews every resource of the kind; modelgate reviews one named resource per model (add `name: {value: MODEL}`)".into()));
    };
    if access.namespace.is_empty() {
        return Err((
            format!("{ra}.namespace"),
            "no namespace: modelgate reviews a namespaced resource (add `namespace: {value: NS}`)"
                .into(),
        ));
    }
    if access.verb.is_empty() || access.resource.is_empty() {
        return Err((
            ra,
            "verb and resource are needed (e.g. get inferenceservices)".into(),
        ));
    }
    Ok(Pending {
        id: String::new(),
        path: String::new(),
        model,
        access,
    })
}

/// Sets each pending review on its model; one without a model, or without a
/// TokenReview to ask the API server with, is reported and fails closed.
pub(crate) fn apply(st: &mut State<'_>) {
    let has_api_server = st
        .config
        .auth
        .kubernetes
        .as_ref()
        .is_some_and(|k| k.token_review.is_some());
    for pending in std::mem::take(&mut st.kube_access) {
        let why = if !has_api_server {
            "a SubjectAccessReview needs the Kubernetes API server of a kubernetesTokenReview identity; none was imported"
        } else if let Some((model, _)) = st.models.by_name.get_mut(&pending.model) {
            model.kubernetes_access = Some(pending.access);
            continue;
        } else {
            "no model of this name (import its InferenceService or pass --upstream NAME=URL)"
        };
        st.authz_blocked = true;
        st.report.push(
            crate::Level::Untranslated,
            &pending.id,
            &pending.path,
            format!("{why}; no caller is let through by a default allow (fail closed)"),
        );
    }
}
