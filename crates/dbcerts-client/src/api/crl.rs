//! dbcerts extension: the project's certificate revocation lists, for `net.tls.CRLFile` of
//! `mongod`.

use reqwest::Method;

use crate::error::ClientError;
use crate::http::{Call, Client, encode_path};

impl Client {
    /// `GET /api/dbcerts/v1/groups/{groupId}/crl`: the CRLs of every issuer of the project that
    /// still has unexpired certificates, PEM blocks one after another (the form OpenSSL and
    /// `mongod` load). Project Read Only is enough.
    pub async fn get_project_crl(&self, group_id: &str) -> Result<String, ClientError> {
        let path = format!(
            "/api/dbcerts/v1{}",
            encode_path(&["groups", group_id, "crl"])?
        );
        let call = Call::raw(Method::GET, path).accept("application/x-pem-file");
        let reply = self.execute(&call).await?;
        let unexpected = |problem: &str| ClientError::UnexpectedBody {
            status: reply.status.as_u16(),
            content_type: None,
            problem: problem.into(),
        };
        let pem =
            std::str::from_utf8(&reply.body).map_err(|_| unexpected("the CRL is not UTF-8 PEM"))?;
        if !pem.starts_with("-----BEGIN X509 CRL-----")
            || !pem.ends_with("-----END X509 CRL-----\n")
        {
            return Err(unexpected("the answer is not PEM CRLs"));
        }
        Ok(pem.to_owned())
    }
}
