//! The store as a whole: reachability (`ping`), closing the pool, and the named server-wide
//! secrets (`server_secrets`, sealed before they arrive): the first value stored under a name
//! is the one every node gets.

macro_rules! sql_server {
    ($store:ident [$($methods:tt)*] $($rest:ident)*) => {
        sql_impl!($store [$($methods)*
            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1")
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn close(&self) {
                self.close_thread_side().await;
                self.pool.close().await;
            }

            async fn thread_side_stats(&self) -> ThreadSideStats {
                self.thread_side_counts()
            }

            async fn get_or_insert_secret(&self, name: &str, sealed: &[u8]) -> StoreResult<Vec<u8>> {
                sqlx::query(
                    "INSERT INTO server_secrets (name, sealed) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(sealed)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                sqlx::query_scalar("SELECT sealed FROM server_secrets WHERE name = $1")
                    .bind(name)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)
            }
        ] $($rest)*);
    };
}
