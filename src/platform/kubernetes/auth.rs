//! Kubernetes credentials that are renewed when the API server says they expired.
//!
//! With an exec plugin in the kubeconfig (`aws eks get-token` on EKS, `gke-gcloud-auth-plugin`,
//! kubelogin), kube-rs runs the plugin again shortly before the expiry the token states. A
//! token can still be refused before that (a session cut short, a clock ahead of the
//! server's): the API server answers 401 to a request that was fine a moment before. Here,
//! such a 401 makes a new client from the same configuration (which runs the plugin again),
//! and the request goes once more with the new token; the rollout goes on, and stderr says
//! so. Without an exec plugin there is nothing to renew, and a 401 stays a refusal
//! ([`super::classify`]: a permission error).
//!
//! Every clone of the returned [`kube::Client`] (the platform's, the lease's) shares the
//! renewed client.

use std::sync::{Arc, RwLock};

use kube::client::Body;

/// The client to use, and how many times it was renewed.
struct Current {
    generation: u64,
    client: kube::Client,
}

/// A client for `config`: the plain one without an exec plugin; with one, a client that
/// renews its credentials when a request is refused with 401 and sends that request again.
pub fn client(config: kube::Config) -> Result<kube::Client, kube::Error> {
    let Some(command) = config
        .auth_info
        .exec
        .as_ref()
        .and_then(|e| e.command.clone())
    else {
        return kube::Client::try_from(config);
    };
    let namespace = config.default_namespace.clone();
    let current = Arc::new(RwLock::new(Current {
        generation: 0,
        client: kube::Client::try_from(config.clone())?,
    }));
    let config = Arc::new(config);
    let command = Arc::new(command);
    let service = tower::service_fn(move |request: http::Request<Body>| {
        let (current, config, command) = (current.clone(), config.clone(), command.clone());
        async move {
            let (generation, client) = {
                let c = current
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                (c.generation, c.client.clone())
            };
            // A body held in memory (every request but a streamed upload) can be sent again.
            let again = request.body().try_clone().map(|body| {
                let mut copy = http::Request::new(body);
                *copy.method_mut() = request.method().clone();
                *copy.uri_mut() = request.uri().clone();
                *copy.version_mut() = request.version();
                *copy.headers_mut() = request.headers().clone();
                copy
            });
            let response = client.send(request).await?;
            let Some(again) = again else {
                return Ok(response);
            };
            if response.status() != http::StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            let client = renew(&current, &config, generation, &command)?;
            client.send(again).await
        }
    });
    Ok(kube::Client::new(service, namespace))
}

/// The client after `generation`: a new one (the plugin run again) unless another request
/// already renewed it.
fn renew(
    current: &RwLock<Current>,
    config: &kube::Config,
    generation: u64,
    command: &str,
) -> Result<kube::Client, kube::Error> {
    let mut c = current
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if c.generation == generation {
        c.client = kube::Client::try_from(config.clone())?;
        c.generation += 1;
        eprintln!(
            "renewed the Kubernetes credentials (ran `{command}` again), the API server having said they expired"
        );
    }
    Ok(c.client.clone())
}
