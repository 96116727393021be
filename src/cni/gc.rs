//! CNI GC: the attachments the runtime still wants (SPEC.md, "GC").

use serde_json::Value;

use super::CniError;

/// One attachment a runtime lists as valid: a container ID and interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub container_id: String,
    pub ifname: String,
}

/// `cni.dev/valid-attachments` (or the legacy `cni.dev/attachments`).
/// None when the runtime sent neither: GC then releases nothing.
pub fn valid_attachments(conf: &Value) -> Result<Option<Vec<Attachment>>, CniError> {
    let (key, list) = match (
        conf.get("cni.dev/valid-attachments"),
        conf.get("cni.dev/attachments"),
    ) {
        (Some(v), _) => ("cni.dev/valid-attachments", v),
        (None, Some(v)) => ("cni.dev/attachments", v),
        (None, None) => return Ok(None),
    };
    let arr = list
        .as_array()
        .ok_or_else(|| CniError::config(key, "expected a list of {containerID, ifname}"))?;
    let mut out = Vec::with_capacity(arr.len());
    for (i, a) in arr.iter().enumerate() {
        let field = |f: &str| {
            a.get(f)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| {
                    CniError::config(&format!("{key}[{i}].{f}"), "missing or not a string")
                })
        };
        out.push(Attachment {
            container_id: field("containerID")?,
            ifname: field("ifname")?,
        });
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn valid_attachments_keys() {
        assert_eq!(valid_attachments(&json!({})).unwrap(), None);
        let v = valid_attachments(
            &json!({"cni.dev/attachments": [{"containerID": "a", "ifname": "eth0"}]}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            v,
            vec![Attachment {
                container_id: "a".into(),
                ifname: "eth0".into()
            }]
        );
        let v = valid_attachments(&json!({"cni.dev/valid-attachments": [], "cni.dev/attachments": [{"containerID": "a", "ifname": "e"}]}))
            .unwrap()
            .unwrap();
        assert!(v.is_empty(), "the new key wins");
        let e = valid_attachments(&json!({"cni.dev/valid-attachments": [{"containerID": 1}]}))
            .unwrap_err();
        assert!(
            e.msg
                .starts_with("cni.dev/valid-attachments[0].containerID"),
            "{}",
            e.msg
        );
    }
}
