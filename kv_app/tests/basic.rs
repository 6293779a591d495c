//! The original's basic test, made strict.

mod common;

use common::{Cluster, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_operations() {
    let c = Cluster::new("basic", 3).await;
    let ck = c.client_all();
    within("basic", async {
        assert_eq!(ck.write_hash("x", "x").await.unwrap(), "");
        assert_eq!(ck.read("x").await.unwrap(), "113605034");
        assert_eq!(ck.read("never").await.unwrap(), "");
        assert_eq!(ck.write("a", "aa").await.unwrap(), "aa");
        assert_eq!(ck.read("a").await.unwrap(), "aa");
        // Written through a client bound to one server, read through each of the others.
        let one = c.client(&[0]);
        assert_eq!(one.write("a", "aaa").await.unwrap(), "aaa");
        for s in 1..3 {
            let other = c.client(&[s]);
            assert_eq!(other.read("a").await.unwrap(), "aaa", "read via server {s}");
        }
        // The chain of write_hash from "" with "0", "1", "2".
        assert_eq!(ck.write_hash("h", "0").await.unwrap(), "");
        assert_eq!(ck.write_hash("h", "1").await.unwrap(), "14788753");
        assert_eq!(ck.write_hash("h", "2").await.unwrap(), "91417210");
        assert_eq!(ck.read("h").await.unwrap(), "107295499");
        assert_eq!(ck.servers().await.unwrap(), c.names);
    })
    .await;
    c.wait_replicas_equal().await;
}
