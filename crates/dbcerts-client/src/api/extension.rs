//! dbcerts extensions outside Atlas's paths: the project's managed CA certificate.

use reqwest::Method;

use crate::error::ClientError;
use crate::http::{Call, Client, encode_path};

impl Client {
    /// `GET /api/dbcerts/v1/groups/{groupId}/ca`: the project's trust bundle (PEM: its managed
    /// CA, and after a rotation every CA generation still in the bundle, oldest first), for
    /// `net.tls.CAFile` of `mongod`. A Project Owner's request creates the CA if the
    /// project has none yet.
    pub async fn get_project_ca(&self, group_id: &str) -> Result<String, ClientError> {
        let path = format!(
            "/api/dbcerts/v1{}",
            encode_path(&["groups", group_id, "ca"])?
        );
        let call = Call::raw(Method::GET, path).accept("application/x-pem-file");
        let reply = self.execute(&call).await?;
        let pem =
            String::from_utf8(reply.body.to_vec()).map_err(|_| ClientError::UnexpectedBody {
                status: reply.status.as_u16(),
                content_type: None,
                problem: "the CA certificate is not UTF-8 PEM".into(),
            })?;
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(ClientError::UnexpectedBody {
                status: reply.status.as_u16(),
                content_type: None,
                problem: "the answer is not a PEM certificate".into(),
            });
        }
        Ok(pem)
    }
}
