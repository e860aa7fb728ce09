//! Hand-written conversion between our rendered ECS JSON and the AWS SDK types (which do not
//! implement serde).
//!
//! - Task definition: [`fill_register`] (JSON → `RegisterTaskDefinition`),
//!   [`task_definition_to_json`] (SDK → JSON) and [`normalize`] to compare the two.
//! - Service: [`fill_update_service`], and [`service_settings_to_json`] /
//!   [`service_settings_from_rendered`] which produce comparable canonical JSON.
//! - Auto scaling: [`apply_scaling`].
//!
//! The JSON is read strictly: every key present must be one this module carries over, otherwise
//! the conversion fails with a [`ConvertError`] naming the key's JSON path. Nothing is dropped
//! silently. `null` counts as absent.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_applicationautoscaling::types as aas;
use aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder;
use aws_sdk_ecs::operation::update_service::builders::UpdateServiceFluentBuilder;
use aws_sdk_ecs::types as ecs;
use aws_smithy_types::error::operation::BuildError;
use serde_json::{Map, Value};

/// A rendered JSON value that cannot be carried over to an AWS request.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConvertError {
    /// JSON path of the offending value, e.g. `containerDefinitions[0].linuxParameters`.
    pub path: String,
    pub message: String,
}

/// Applying `scaling.json` failed.
#[derive(Debug, thiserror::Error)]
pub enum ScalingError {
    #[error(transparent)]
    Convert(#[from] ConvertError),
    #[error("{operation}: {message}")]
    Api {
        operation: &'static str,
        message: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

type Result<T, E = ConvertError> = std::result::Result<T, E>;

fn error(path: impl Into<String>, message: impl Into<String>) -> ConvertError {
    let path = path.into();
    ConvertError {
        path: if path.is_empty() {
            "(top level)".to_owned()
        } else {
            path
        },
        message: message.into(),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn built<T>(r: Result<T, BuildError>, path: &str) -> Result<T> {
    r.map_err(|e| error(path, e.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Reading JSON: an object whose keys are consumed one by one; `finish` rejects the rest.
// ---------------------------------------------------------------------------------------------

fn as_string(v: &Value, path: &str) -> Result<String> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| error(path, format!("expected a string, found {}", kind(v))))
}

fn as_i32(v: &Value, path: &str) -> Result<i32> {
    let n = v
        .as_i64()
        .ok_or_else(|| error(path, format!("expected an integer, found {}", describe(v))))?;
    i32::try_from(n).map_err(|_| error(path, format!("{n} is out of range")))
}

fn as_f64(v: &Value, path: &str) -> Result<f64> {
    v.as_f64()
        .ok_or_else(|| error(path, format!("expected a number, found {}", kind(v))))
}

fn describe(v: &Value) -> String {
    match v {
        Value::Number(n) => format!("the number {n}"),
        other => kind(other).to_owned(),
    }
}

fn parse_enum<T>(v: &Value, path: &str, values: &[&str]) -> Result<T>
where
    T: for<'s> From<&'s str>,
{
    let s = as_string(v, path)?;
    if values.contains(&s.as_str()) {
        Ok(T::from(s.as_str()))
    } else {
        Err(error(
            path,
            format!(
                "unknown value {s:?}; expected one of: {}",
                values.join(", ")
            ),
        ))
    }
}

struct Fields<'a> {
    path: String,
    map: &'a Map<String, Value>,
    used: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    fn new(value: &'a Value, path: String) -> Result<Self> {
        match value {
            Value::Object(map) => Ok(Self {
                path,
                map,
                used: Vec::new(),
            }),
            other => Err(error(
                path,
                format!("expected an object, found {}", kind(other)),
            )),
        }
    }

    fn at(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Marks `key` as handled and returns its value (`null` counts as absent).
    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.used.push(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// Accepts `key` without carrying it over.
    fn accept(&mut self, key: &'static str) {
        self.used.push(key);
    }

    fn required(&mut self, key: &'static str) -> Result<&'a Value> {
        self.get(key)
            .ok_or_else(|| error(self.at(key), "required but missing"))
    }

    fn string(&mut self, key: &'static str) -> Result<Option<String>> {
        self.get(key)
            .map(|v| as_string(v, &self.at(key)))
            .transpose()
    }

    fn required_string(&mut self, key: &'static str) -> Result<String> {
        let v = self.required(key)?;
        as_string(v, &self.at(key))
    }

    /// A string, or an integer given as a JSON number (task-level cpu/memory).
    fn numeric_string(&mut self, key: &'static str) -> Result<Option<String>> {
        let path = self.at(key);
        self.get(key)
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) if n.is_u64() => Ok(n.to_string()),
                other => Err(error(
                    path.as_str(),
                    format!("expected a string or an integer, found {}", describe(other)),
                )),
            })
            .transpose()
    }

    fn int(&mut self, key: &'static str) -> Result<Option<i32>> {
        self.get(key).map(|v| as_i32(v, &self.at(key))).transpose()
    }

    fn required_int(&mut self, key: &'static str) -> Result<i32> {
        let v = self.required(key)?;
        as_i32(v, &self.at(key))
    }

    fn float(&mut self, key: &'static str) -> Result<Option<f64>> {
        self.get(key).map(|v| as_f64(v, &self.at(key))).transpose()
    }

    fn bool(&mut self, key: &'static str) -> Result<Option<bool>> {
        let path = self.at(key);
        self.get(key)
            .map(|v| {
                v.as_bool().ok_or_else(|| {
                    error(
                        path.as_str(),
                        format!("expected true or false, found {}", kind(v)),
                    )
                })
            })
            .transpose()
    }

    fn required_bool(&mut self, key: &'static str) -> Result<bool> {
        self.bool(key)?
            .ok_or_else(|| error(self.at(key), "required but missing"))
    }

    fn enumeration<T>(&mut self, key: &'static str, values: &[&str]) -> Result<Option<T>>
    where
        T: for<'s> From<&'s str>,
    {
        self.get(key)
            .map(|v| parse_enum(v, &self.at(key), values))
            .transpose()
    }

    fn required_enum<T>(&mut self, key: &'static str, values: &[&str]) -> Result<T>
    where
        T: for<'s> From<&'s str>,
    {
        let v = self.required(key)?;
        parse_enum(v, &self.at(key), values)
    }

    /// The elements of an array, each with its path (`key[i]`).
    fn array(&mut self, key: &'static str) -> Result<Option<Vec<(String, &'a Value)>>> {
        let path = self.at(key);
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (format!("{path}[{i}]"), v))
                    .collect(),
            )),
            Some(other) => Err(error(
                path,
                format!("expected an array, found {}", kind(other)),
            )),
        }
    }

    fn strings(&mut self, key: &'static str) -> Result<Option<Vec<String>>> {
        self.array(key)?
            .map(|items| items.iter().map(|(p, v)| as_string(v, p)).collect())
            .transpose()
    }

    fn ints(&mut self, key: &'static str) -> Result<Option<Vec<i32>>> {
        self.array(key)?
            .map(|items| items.iter().map(|(p, v)| as_i32(v, p)).collect())
            .transpose()
    }

    fn enum_list<T>(&mut self, key: &'static str, values: &[&str]) -> Result<Option<Vec<T>>>
    where
        T: for<'s> From<&'s str>,
    {
        self.array(key)?
            .map(|items| {
                items
                    .iter()
                    .map(|(p, v)| parse_enum(v, p, values))
                    .collect()
            })
            .transpose()
    }

    /// An object of strings (docker labels, log options...).
    fn string_map(&mut self, key: &'static str) -> Result<Option<HashMap<String, String>>> {
        let path = self.at(key);
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| Ok((k.clone(), as_string(v, &join(&path, k))?)))
                .collect::<Result<HashMap<_, _>>>()
                .map(Some),
            Some(other) => Err(error(
                path,
                format!("expected an object of strings, found {}", kind(other)),
            )),
        }
    }

    /// A nested object, converted by `convert`.
    fn nested<T>(
        &mut self,
        key: &'static str,
        convert: impl FnOnce(Fields<'a>) -> Result<T>,
    ) -> Result<Option<T>> {
        let path = self.at(key);
        self.get(key)
            .map(|v| Fields::new(v, path).and_then(convert))
            .transpose()
    }

    /// An array of objects, each converted by `convert`.
    fn list<T>(
        &mut self,
        key: &'static str,
        mut convert: impl FnMut(Fields<'a>) -> Result<T>,
    ) -> Result<Option<Vec<T>>> {
        self.array(key)?
            .map(|items| {
                items
                    .into_iter()
                    .map(|(p, v)| Fields::new(v, p).and_then(&mut convert))
                    .collect()
            })
            .transpose()
    }

    /// Fails on the first key that was not handled.
    fn finish(self) -> Result<()> {
        match self
            .map
            .iter()
            .find(|(k, v)| !v.is_null() && !self.used.contains(&k.as_str()))
        {
            Some((k, _)) => Err(error(
                join(&self.path, k),
                "not supported yet by movieverse-deploy (remove it from the template)",
            )),
            None => Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Task definition: JSON → SDK
// ---------------------------------------------------------------------------------------------

/// Fills a `RegisterTaskDefinition` request from our rendered task definition JSON. Every field
/// present in the JSON must be carried over; a field this function does not support is a
/// [`ConvertError`] naming its JSON path (e.g. `containerDefinitions[0].linuxParameters`) and
/// saying it is not supported yet — never silently dropped. `extra_tags` are appended to the
/// JSON's `tags` (used for the commit and deployment id); an extra tag replaces a JSON tag with
/// the same key.
pub fn fill_register(
    b: RegisterTaskDefinitionFluentBuilder,
    td: &serde_json::Value,
    extra_tags: &[(String, String)],
) -> Result<RegisterTaskDefinitionFluentBuilder, ConvertError> {
    let mut f = Fields::new(td, String::new())?;
    let family = f.required_string("family")?;
    let containers = f
        .list("containerDefinitions", container_definition)?
        .unwrap_or_default();
    if containers.is_empty() {
        return Err(error(
            "containerDefinitions",
            "at least one container definition is required",
        ));
    }
    let mut tags = f.list("tags", tag)?.unwrap_or_default();
    tags.retain(|t| !extra_tags.iter().any(|(k, _)| t.key() == Some(k.as_str())));
    tags.extend(
        extra_tags
            .iter()
            .map(|(k, v)| ecs::Tag::builder().key(k).value(v).build()),
    );

    let b = b
        .family(family)
        .set_task_role_arn(f.string("taskRoleArn")?)
        .set_execution_role_arn(f.string("executionRoleArn")?)
        .set_network_mode(f.enumeration("networkMode", ecs::NetworkMode::values())?)
        .set_container_definitions(Some(containers))
        .set_volumes(f.list("volumes", volume)?)
        .set_placement_constraints(f.list("placementConstraints", placement_constraint)?)
        .set_requires_compatibilities(
            f.enum_list("requiresCompatibilities", ecs::Compatibility::values())?,
        )
        .set_cpu(f.numeric_string("cpu")?)
        .set_memory(f.numeric_string("memory")?)
        .set_tags((!tags.is_empty()).then_some(tags))
        .set_pid_mode(f.enumeration("pidMode", ecs::PidMode::values())?)
        .set_ipc_mode(f.enumeration("ipcMode", ecs::IpcMode::values())?)
        .set_ephemeral_storage(f.nested("ephemeralStorage", ephemeral_storage)?)
        .set_runtime_platform(f.nested("runtimePlatform", runtime_platform)?)
        .set_enable_fault_injection(f.bool("enableFaultInjection")?);
    f.finish()?;
    Ok(b)
}

fn tag(mut f: Fields<'_>) -> Result<ecs::Tag> {
    let t = ecs::Tag::builder()
        .key(f.required_string("key")?)
        .set_value(f.string("value")?)
        .build();
    f.finish()?;
    Ok(t)
}

fn volume(mut f: Fields<'_>) -> Result<ecs::Volume> {
    let v = ecs::Volume::builder()
        .name(f.required_string("name")?)
        .set_host(f.nested("host", |mut h| {
            let host = ecs::HostVolumeProperties::builder()
                .set_source_path(h.string("sourcePath")?)
                .build();
            h.finish()?;
            Ok(host)
        })?)
        .set_docker_volume_configuration(
            f.nested("dockerVolumeConfiguration", docker_volume_configuration)?,
        )
        .set_efs_volume_configuration(f.nested("efsVolumeConfiguration", efs_volume_configuration)?)
        .set_configured_at_launch(f.bool("configuredAtLaunch")?)
        .build();
    f.finish()?;
    Ok(v)
}

fn docker_volume_configuration(mut f: Fields<'_>) -> Result<ecs::DockerVolumeConfiguration> {
    let c = ecs::DockerVolumeConfiguration::builder()
        .set_scope(f.enumeration("scope", ecs::Scope::values())?)
        .set_autoprovision(f.bool("autoprovision")?)
        .set_driver(f.string("driver")?)
        .set_driver_opts(f.string_map("driverOpts")?)
        .set_labels(f.string_map("labels")?)
        .build();
    f.finish()?;
    Ok(c)
}

fn efs_volume_configuration(mut f: Fields<'_>) -> Result<ecs::EfsVolumeConfiguration> {
    let c = ecs::EfsVolumeConfiguration::builder()
        .file_system_id(f.required_string("fileSystemId")?)
        .set_root_directory(f.string("rootDirectory")?)
        .set_transit_encryption(
            f.enumeration("transitEncryption", ecs::EfsTransitEncryption::values())?,
        )
        .set_transit_encryption_port(f.int("transitEncryptionPort")?)
        .set_authorization_config(f.nested("authorizationConfig", |mut a| {
            let c = ecs::EfsAuthorizationConfig::builder()
                .set_access_point_id(a.string("accessPointId")?)
                .set_iam(a.enumeration("iam", ecs::EfsAuthorizationConfigIam::values())?)
                .build();
            a.finish()?;
            Ok(c)
        })?);
    let path = f.path.clone();
    f.finish()?;
    built(c.build(), &path)
}

fn placement_constraint(mut f: Fields<'_>) -> Result<ecs::TaskDefinitionPlacementConstraint> {
    let c = ecs::TaskDefinitionPlacementConstraint::builder()
        .set_type(f.enumeration("type", ecs::TaskDefinitionPlacementConstraintType::values())?)
        .set_expression(f.string("expression")?)
        .build();
    f.finish()?;
    Ok(c)
}

fn ephemeral_storage(mut f: Fields<'_>) -> Result<ecs::EphemeralStorage> {
    let s = ecs::EphemeralStorage::builder()
        .size_in_gib(f.required_int("sizeInGiB")?)
        .build();
    f.finish()?;
    Ok(s)
}

fn runtime_platform(mut f: Fields<'_>) -> Result<ecs::RuntimePlatform> {
    let p = ecs::RuntimePlatform::builder()
        .set_cpu_architecture(f.enumeration("cpuArchitecture", ecs::CpuArchitecture::values())?)
        .set_operating_system_family(
            f.enumeration("operatingSystemFamily", ecs::OsFamily::values())?,
        )
        .build();
    f.finish()?;
    Ok(p)
}

fn container_definition(mut f: Fields<'_>) -> Result<ecs::ContainerDefinition> {
    let c = ecs::ContainerDefinition::builder()
        .name(f.required_string("name")?)
        .image(f.required_string("image")?)
        .set_repository_credentials(f.nested("repositoryCredentials", |mut r| {
            let c = ecs::RepositoryCredentials::builder()
                .credentials_parameter(r.required_string("credentialsParameter")?);
            let path = r.path.clone();
            r.finish()?;
            built(c.build(), &path)
        })?)
        .set_cpu(f.int("cpu")?)
        .set_memory(f.int("memory")?)
        .set_memory_reservation(f.int("memoryReservation")?)
        .set_links(f.strings("links")?)
        .set_port_mappings(f.list("portMappings", port_mapping)?)
        .set_essential(f.bool("essential")?)
        .set_restart_policy(f.nested("restartPolicy", restart_policy)?)
        .set_entry_point(f.strings("entryPoint")?)
        .set_command(f.strings("command")?)
        .set_environment(f.list("environment", key_value_pair)?)
        .set_environment_files(f.list("environmentFiles", environment_file)?)
        .set_mount_points(f.list("mountPoints", mount_point)?)
        .set_volumes_from(f.list("volumesFrom", volume_from)?)
        .set_secrets(f.list("secrets", secret)?)
        .set_depends_on(f.list("dependsOn", container_dependency)?)
        .set_start_timeout(f.int("startTimeout")?)
        .set_stop_timeout(f.int("stopTimeout")?)
        .set_version_consistency(
            f.enumeration("versionConsistency", ecs::VersionConsistency::values())?,
        )
        .set_hostname(f.string("hostname")?)
        .set_user(f.string("user")?)
        .set_working_directory(f.string("workingDirectory")?)
        .set_disable_networking(f.bool("disableNetworking")?)
        .set_privileged(f.bool("privileged")?)
        .set_readonly_root_filesystem(f.bool("readonlyRootFilesystem")?)
        .set_dns_servers(f.strings("dnsServers")?)
        .set_dns_search_domains(f.strings("dnsSearchDomains")?)
        .set_extra_hosts(f.list("extraHosts", host_entry)?)
        .set_docker_security_options(f.strings("dockerSecurityOptions")?)
        .set_interactive(f.bool("interactive")?)
        .set_pseudo_terminal(f.bool("pseudoTerminal")?)
        .set_docker_labels(f.string_map("dockerLabels")?)
        .set_ulimits(f.list("ulimits", ulimit)?)
        .set_log_configuration(f.nested("logConfiguration", log_configuration)?)
        .set_health_check(f.nested("healthCheck", health_check)?)
        .set_system_controls(f.list("systemControls", system_control)?)
        .set_resource_requirements(f.list("resourceRequirements", resource_requirement)?)
        .set_firelens_configuration(f.nested("firelensConfiguration", firelens_configuration)?)
        .set_credential_specs(f.strings("credentialSpecs")?)
        .build();
    f.finish()?;
    Ok(c)
}

fn port_mapping(mut f: Fields<'_>) -> Result<ecs::PortMapping> {
    let p = ecs::PortMapping::builder()
        .set_name(f.string("name")?)
        .set_container_port(f.int("containerPort")?)
        .set_host_port(f.int("hostPort")?)
        .set_protocol(f.enumeration("protocol", ecs::TransportProtocol::values())?)
        .set_app_protocol(f.enumeration("appProtocol", ecs::ApplicationProtocol::values())?)
        .set_container_port_range(f.string("containerPortRange")?)
        .build();
    f.finish()?;
    Ok(p)
}

fn restart_policy(mut f: Fields<'_>) -> Result<ecs::ContainerRestartPolicy> {
    let p = ecs::ContainerRestartPolicy::builder()
        .enabled(f.required_bool("enabled")?)
        .set_ignored_exit_codes(f.ints("ignoredExitCodes")?)
        .set_restart_attempt_period(f.int("restartAttemptPeriod")?);
    let path = f.path.clone();
    f.finish()?;
    built(p.build(), &path)
}

fn key_value_pair(mut f: Fields<'_>) -> Result<ecs::KeyValuePair> {
    let kv = ecs::KeyValuePair::builder()
        .name(f.required_string("name")?)
        .set_value(f.string("value")?)
        .build();
    f.finish()?;
    Ok(kv)
}

fn environment_file(mut f: Fields<'_>) -> Result<ecs::EnvironmentFile> {
    let e = ecs::EnvironmentFile::builder()
        .value(f.required_string("value")?)
        .r#type(f.required_enum("type", ecs::EnvironmentFileType::values())?);
    let path = f.path.clone();
    f.finish()?;
    built(e.build(), &path)
}

fn mount_point(mut f: Fields<'_>) -> Result<ecs::MountPoint> {
    let m = ecs::MountPoint::builder()
        .set_source_volume(f.string("sourceVolume")?)
        .set_container_path(f.string("containerPath")?)
        .set_read_only(f.bool("readOnly")?)
        .build();
    f.finish()?;
    Ok(m)
}

fn volume_from(mut f: Fields<'_>) -> Result<ecs::VolumeFrom> {
    let v = ecs::VolumeFrom::builder()
        .set_source_container(f.string("sourceContainer")?)
        .set_read_only(f.bool("readOnly")?)
        .build();
    f.finish()?;
    Ok(v)
}

fn secret(mut f: Fields<'_>) -> Result<ecs::Secret> {
    let s = ecs::Secret::builder()
        .name(f.required_string("name")?)
        .value_from(f.required_string("valueFrom")?);
    let path = f.path.clone();
    f.finish()?;
    built(s.build(), &path)
}

fn container_dependency(mut f: Fields<'_>) -> Result<ecs::ContainerDependency> {
    let d = ecs::ContainerDependency::builder()
        .container_name(f.required_string("containerName")?)
        .condition(f.required_enum("condition", ecs::ContainerCondition::values())?);
    let path = f.path.clone();
    f.finish()?;
    built(d.build(), &path)
}

fn host_entry(mut f: Fields<'_>) -> Result<ecs::HostEntry> {
    let h = ecs::HostEntry::builder()
        .hostname(f.required_string("hostname")?)
        .ip_address(f.required_string("ipAddress")?);
    let path = f.path.clone();
    f.finish()?;
    built(h.build(), &path)
}

fn ulimit(mut f: Fields<'_>) -> Result<ecs::Ulimit> {
    let u = ecs::Ulimit::builder()
        .name(f.required_enum("name", ecs::UlimitName::values())?)
        .soft_limit(f.required_int("softLimit")?)
        .hard_limit(f.required_int("hardLimit")?);
    let path = f.path.clone();
    f.finish()?;
    built(u.build(), &path)
}

fn log_configuration(mut f: Fields<'_>) -> Result<ecs::LogConfiguration> {
    let l = ecs::LogConfiguration::builder()
        .log_driver(f.required_enum("logDriver", ecs::LogDriver::values())?)
        .set_options(f.string_map("options")?)
        .set_secret_options(f.list("secretOptions", secret)?);
    let path = f.path.clone();
    f.finish()?;
    built(l.build(), &path)
}

fn health_check(mut f: Fields<'_>) -> Result<ecs::HealthCheck> {
    let command = f
        .strings("command")?
        .ok_or_else(|| error(f.at("command"), "required but missing"))?;
    let h = ecs::HealthCheck::builder()
        .set_command(Some(command))
        .set_interval(f.int("interval")?)
        .set_timeout(f.int("timeout")?)
        .set_retries(f.int("retries")?)
        .set_start_period(f.int("startPeriod")?);
    let path = f.path.clone();
    f.finish()?;
    built(h.build(), &path)
}

fn system_control(mut f: Fields<'_>) -> Result<ecs::SystemControl> {
    let s = ecs::SystemControl::builder()
        .set_namespace(f.string("namespace")?)
        .set_value(f.string("value")?)
        .build();
    f.finish()?;
    Ok(s)
}

fn resource_requirement(mut f: Fields<'_>) -> Result<ecs::ResourceRequirement> {
    let r = ecs::ResourceRequirement::builder()
        .value(f.required_string("value")?)
        .r#type(f.required_enum("type", ecs::ResourceType::values())?);
    let path = f.path.clone();
    f.finish()?;
    built(r.build(), &path)
}

fn firelens_configuration(mut f: Fields<'_>) -> Result<ecs::FirelensConfiguration> {
    let c = ecs::FirelensConfiguration::builder()
        .r#type(f.required_enum("type", ecs::FirelensConfigurationType::values())?)
        .set_options(f.string_map("options")?);
    let path = f.path.clone();
    f.finish()?;
    built(c.build(), &path)
}

// ---------------------------------------------------------------------------------------------
// Task definition: SDK → JSON
// ---------------------------------------------------------------------------------------------

/// Builds a JSON object, leaving out absent values and empty lists.
#[derive(Default)]
struct Out(Map<String, Value>);

impl Out {
    fn put(&mut self, key: &str, v: impl Into<Value>) {
        self.0.insert(key.to_owned(), v.into());
    }

    fn opt(&mut self, key: &str, v: Option<impl Into<Value>>) {
        if let Some(v) = v {
            self.put(key, v);
        }
    }

    fn str(&mut self, key: &str, v: Option<&str>) {
        self.opt(key, v);
    }

    fn list(&mut self, key: &str, items: impl IntoIterator<Item = Value>) {
        let items: Vec<Value> = items.into_iter().collect();
        if !items.is_empty() {
            self.put(key, items);
        }
    }

    fn strings(&mut self, key: &str, items: &[String]) {
        self.list(key, items.iter().map(|s| Value::from(s.as_str())));
    }

    /// A string map, with its keys sorted (the SDK's `HashMap` has no order).
    fn map(&mut self, key: &str, m: Option<&HashMap<String, String>>) {
        if let Some(m) = m {
            let sorted: BTreeMap<&String, &String> = m.iter().collect();
            let obj: Map<String, Value> = sorted
                .into_iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect();
            self.put(key, obj);
        }
    }

    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

fn date(d: Option<&aws_smithy_types::DateTime>) -> Option<String> {
    d.and_then(|d| d.fmt(aws_smithy_types::date_time::Format::DateTime).ok())
}

/// The SDK's `TaskDefinition` (from `DescribeTaskDefinition` / `RegisterTaskDefinition` output)
/// back to JSON in the same shape as our rendered JSON, for the same supported fields. The
/// API-filled fields (`taskDefinitionArn`, `revision`, `status`...) are included for display;
/// [`normalize`] drops them. The SDK type carries no tags.
pub fn task_definition_to_json(td: &aws_sdk_ecs::types::TaskDefinition) -> serde_json::Value {
    let mut o = Out::default();
    o.str("taskDefinitionArn", td.task_definition_arn());
    o.str("family", td.family());
    if td.revision() != 0 {
        o.put("revision", td.revision());
    }
    o.str("taskRoleArn", td.task_role_arn());
    o.str("executionRoleArn", td.execution_role_arn());
    o.str(
        "networkMode",
        td.network_mode().map(ecs::NetworkMode::as_str),
    );
    o.list(
        "requiresCompatibilities",
        td.requires_compatibilities()
            .iter()
            .map(|c| Value::from(c.as_str())),
    );
    o.str("cpu", td.cpu());
    o.str("memory", td.memory());
    if let Some(p) = td.runtime_platform() {
        let mut r = Out::default();
        r.str(
            "cpuArchitecture",
            p.cpu_architecture().map(ecs::CpuArchitecture::as_str),
        );
        r.str(
            "operatingSystemFamily",
            p.operating_system_family().map(ecs::OsFamily::as_str),
        );
        o.put("runtimePlatform", r.done());
    }
    o.str("pidMode", td.pid_mode().map(ecs::PidMode::as_str));
    o.str("ipcMode", td.ipc_mode().map(ecs::IpcMode::as_str));
    o.list(
        "containerDefinitions",
        td.container_definitions().iter().map(container_json),
    );
    o.list("volumes", td.volumes().iter().map(volume_json));
    o.list(
        "placementConstraints",
        td.placement_constraints().iter().map(|c| {
            let mut p = Out::default();
            p.str(
                "type",
                c.r#type()
                    .map(ecs::TaskDefinitionPlacementConstraintType::as_str),
            );
            p.str("expression", c.expression());
            p.done()
        }),
    );
    if let Some(s) = td.ephemeral_storage() {
        let mut e = Out::default();
        e.put("sizeInGiB", s.size_in_gib());
        o.put("ephemeralStorage", e.done());
    }
    o.opt("enableFaultInjection", td.enable_fault_injection());
    o.str("status", td.status().map(ecs::TaskDefinitionStatus::as_str));
    o.list(
        "compatibilities",
        td.compatibilities().iter().map(|c| Value::from(c.as_str())),
    );
    o.list(
        "requiresAttributes",
        td.requires_attributes().iter().map(|a| {
            let mut p = Out::default();
            p.put("name", a.name());
            p.str("value", a.value());
            p.str("targetType", a.target_type().map(ecs::TargetType::as_str));
            p.str("targetId", a.target_id());
            p.done()
        }),
    );
    o.opt("registeredAt", date(td.registered_at()));
    o.str("registeredBy", td.registered_by());
    o.opt("deregisteredAt", date(td.deregistered_at()));
    o.done()
}

fn volume_json(v: &ecs::Volume) -> Value {
    let mut o = Out::default();
    o.str("name", v.name());
    if let Some(h) = v.host() {
        let mut p = Out::default();
        p.str("sourcePath", h.source_path());
        o.put("host", p.done());
    }
    if let Some(d) = v.docker_volume_configuration() {
        let mut p = Out::default();
        p.str("scope", d.scope().map(ecs::Scope::as_str));
        p.opt("autoprovision", d.autoprovision());
        p.str("driver", d.driver());
        p.map("driverOpts", d.driver_opts());
        p.map("labels", d.labels());
        o.put("dockerVolumeConfiguration", p.done());
    }
    if let Some(e) = v.efs_volume_configuration() {
        let mut p = Out::default();
        p.put("fileSystemId", e.file_system_id());
        p.str("rootDirectory", e.root_directory());
        p.str(
            "transitEncryption",
            e.transit_encryption()
                .map(ecs::EfsTransitEncryption::as_str),
        );
        p.opt("transitEncryptionPort", e.transit_encryption_port());
        if let Some(a) = e.authorization_config() {
            let mut c = Out::default();
            c.str("accessPointId", a.access_point_id());
            c.str("iam", a.iam().map(ecs::EfsAuthorizationConfigIam::as_str));
            p.put("authorizationConfig", c.done());
        }
        o.put("efsVolumeConfiguration", p.done());
    }
    o.opt("configuredAtLaunch", v.configured_at_launch());
    o.done()
}

fn secret_json(s: &ecs::Secret) -> Value {
    let mut o = Out::default();
    o.put("name", s.name());
    o.put("valueFrom", s.value_from());
    o.done()
}

fn container_json(c: &ecs::ContainerDefinition) -> Value {
    let mut o = Out::default();
    o.str("name", c.name());
    o.str("image", c.image());
    if let Some(r) = c.repository_credentials() {
        let mut p = Out::default();
        p.put("credentialsParameter", r.credentials_parameter());
        o.put("repositoryCredentials", p.done());
    }
    o.opt("essential", c.essential());
    o.strings("entryPoint", c.entry_point());
    o.strings("command", c.command());
    o.str("workingDirectory", c.working_directory());
    if c.cpu() != 0 {
        o.put("cpu", c.cpu());
    }
    o.opt("memory", c.memory());
    o.opt("memoryReservation", c.memory_reservation());
    o.strings("links", c.links());
    o.list(
        "portMappings",
        c.port_mappings().iter().map(|p| {
            let mut m = Out::default();
            m.str("name", p.name());
            m.opt("containerPort", p.container_port());
            m.opt("hostPort", p.host_port());
            m.str("protocol", p.protocol().map(ecs::TransportProtocol::as_str));
            m.str(
                "appProtocol",
                p.app_protocol().map(ecs::ApplicationProtocol::as_str),
            );
            m.str("containerPortRange", p.container_port_range());
            m.done()
        }),
    );
    if let Some(r) = c.restart_policy() {
        let mut p = Out::default();
        p.put("enabled", r.enabled());
        p.list(
            "ignoredExitCodes",
            r.ignored_exit_codes().iter().map(|&i| Value::from(i)),
        );
        p.opt("restartAttemptPeriod", r.restart_attempt_period());
        o.put("restartPolicy", p.done());
    }
    o.list(
        "environment",
        c.environment().iter().map(|kv| {
            let mut p = Out::default();
            p.str("name", kv.name());
            p.str("value", kv.value());
            p.done()
        }),
    );
    o.list(
        "environmentFiles",
        c.environment_files().iter().map(|e| {
            let mut p = Out::default();
            p.put("value", e.value());
            p.put("type", e.r#type().as_str());
            p.done()
        }),
    );
    o.list("secrets", c.secrets().iter().map(secret_json));
    o.list(
        "mountPoints",
        c.mount_points().iter().map(|m| {
            let mut p = Out::default();
            p.str("sourceVolume", m.source_volume());
            p.str("containerPath", m.container_path());
            p.opt("readOnly", m.read_only());
            p.done()
        }),
    );
    o.list(
        "volumesFrom",
        c.volumes_from().iter().map(|v| {
            let mut p = Out::default();
            p.str("sourceContainer", v.source_container());
            p.opt("readOnly", v.read_only());
            p.done()
        }),
    );
    o.list(
        "dependsOn",
        c.depends_on().iter().map(|d| {
            let mut p = Out::default();
            p.put("containerName", d.container_name());
            p.put("condition", d.condition().as_str());
            p.done()
        }),
    );
    o.opt("startTimeout", c.start_timeout());
    o.opt("stopTimeout", c.stop_timeout());
    o.str(
        "versionConsistency",
        c.version_consistency().map(ecs::VersionConsistency::as_str),
    );
    o.str("hostname", c.hostname());
    o.str("user", c.user());
    o.opt("disableNetworking", c.disable_networking());
    o.opt("privileged", c.privileged());
    o.opt("readonlyRootFilesystem", c.readonly_root_filesystem());
    o.strings("dnsServers", c.dns_servers());
    o.strings("dnsSearchDomains", c.dns_search_domains());
    o.list(
        "extraHosts",
        c.extra_hosts().iter().map(|h| {
            let mut p = Out::default();
            p.put("hostname", h.hostname());
            p.put("ipAddress", h.ip_address());
            p.done()
        }),
    );
    o.strings("dockerSecurityOptions", c.docker_security_options());
    o.opt("interactive", c.interactive());
    o.opt("pseudoTerminal", c.pseudo_terminal());
    o.map("dockerLabels", c.docker_labels());
    o.list(
        "ulimits",
        c.ulimits().iter().map(|u| {
            let mut p = Out::default();
            p.put("name", u.name().as_str());
            p.put("softLimit", u.soft_limit());
            p.put("hardLimit", u.hard_limit());
            p.done()
        }),
    );
    if let Some(h) = c.health_check() {
        let mut p = Out::default();
        p.strings("command", h.command());
        p.opt("interval", h.interval());
        p.opt("timeout", h.timeout());
        p.opt("retries", h.retries());
        p.opt("startPeriod", h.start_period());
        o.put("healthCheck", p.done());
    }
    if let Some(l) = c.log_configuration() {
        let mut p = Out::default();
        p.put("logDriver", l.log_driver().as_str());
        p.map("options", l.options());
        p.list("secretOptions", l.secret_options().iter().map(secret_json));
        o.put("logConfiguration", p.done());
    }
    o.list(
        "systemControls",
        c.system_controls().iter().map(|s| {
            let mut p = Out::default();
            p.str("namespace", s.namespace());
            p.str("value", s.value());
            p.done()
        }),
    );
    o.list(
        "resourceRequirements",
        c.resource_requirements().iter().map(|r| {
            let mut p = Out::default();
            p.put("value", r.value());
            p.put("type", r.r#type().as_str());
            p.done()
        }),
    );
    if let Some(f) = c.firelens_configuration() {
        let mut p = Out::default();
        p.put("type", f.r#type().as_str());
        p.map("options", f.options());
        o.put("firelensConfiguration", p.done());
    }
    o.strings("credentialSpecs", c.credential_specs());
    o.done()
}

// ---------------------------------------------------------------------------------------------
// Canonical forms for comparison
// ---------------------------------------------------------------------------------------------

/// Fields the API fills in on a registered task definition (and `tags`, which
/// `DescribeTaskDefinition` returns apart from the definition).
const API_FILLED: &[&str] = &[
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
    "deleteRequestedAt",
    "tags",
];

fn drop_if(o: &mut Map<String, Value>, key: &str, default: &Value) {
    if o.get(key) == Some(default) {
        o.shift_remove(key);
    }
}

fn sort_by_name(o: &mut Map<String, Value>, key: &str) {
    if let Some(Value::Array(items)) = o.get_mut(key) {
        items.sort_by(|a, b| {
            let name = |v: &Value| v.get("name").and_then(Value::as_str).map(str::to_owned);
            name(a).cmp(&name(b))
        });
    }
}

fn each_object<'v>(
    o: &'v mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'v mut Map<String, Value>> {
    o.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

/// Recursively drops nulls, empty arrays and empty objects from objects, and sorts object keys.
fn canonical(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map
                .into_iter()
                .map(|(k, v)| (k, canonical(v)))
                .filter(|(_, v)| match v {
                    Value::Null => false,
                    Value::Array(a) => !a.is_empty(),
                    Value::Object(o) => !o.is_empty(),
                    _ => true,
                })
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

/// `td` with the value of every plain variable whose name looks like a secret replaced by a
/// mark: what a diff or a report may show of a live task definition. Each hidden value is
/// also given to [`crate::report::mask`], so nothing printed later shows it either.
pub fn hide_plain_secrets(td: &serde_json::Value) -> serde_json::Value {
    let mut v = td.clone();
    for c in v["containerDefinitions"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        crate::report::hide_plain_secrets(c["environment"].as_array_mut());
    }
    v
}

/// `td` without the fields the API fills (`taskDefinitionArn`, `revision`, `status`...): what
/// a `RegisterTaskDefinition` request of the same definition says.
pub fn registrable(td: &serde_json::Value) -> serde_json::Value {
    let mut v = td.clone();
    if let Value::Object(o) = &mut v {
        for key in API_FILLED {
            o.shift_remove(*key);
        }
    }
    v
}

/// Canonical form for comparing a rendered task definition with the live one: drops
/// API-filled fields (`taskDefinitionArn`, `revision`, `status`, `requiresAttributes`,
/// `compatibilities`, `registeredAt`/`By`, `deregisteredAt`, `tags`), nulls, empty
/// arrays/objects, and values equal to ECS defaults (container `essential: true`, container
/// `cpu: 0`, portMapping `protocol: "tcp"`, awsvpc/host `hostPort` equal to `containerPort`,
/// health check `interval: 30`, `timeout: 5`, `retries: 3`, `startPeriod: 0`, mount point
/// `readOnly: false`, `versionConsistency: "enabled"`, `networkMode: "bridge"`,
/// `enableFaultInjection: false`, EFS `rootDirectory: "/"`); normalises task cpu/memory to
/// strings; sorts `environment` and `secrets` by name, and object keys.
/// `normalize(rendered) == normalize(task_definition_to_json(registered))` holds for an
/// unchanged definition.
pub fn normalize(td: &serde_json::Value) -> serde_json::Value {
    let mut v = registrable(td);
    if let Value::Object(o) = &mut v {
        for key in ["cpu", "memory"] {
            if let Some(Value::Number(n)) = o.get(key) {
                let s = n.to_string();
                o.insert(key.to_owned(), Value::String(s));
            }
        }
        drop_if(o, "enableFaultInjection", &Value::Bool(false));
        let host_port_is_container_port = matches!(
            o.get("networkMode").and_then(Value::as_str),
            Some("awsvpc" | "host")
        );
        drop_if(o, "networkMode", &Value::from("bridge"));
        for c in each_object(o, "containerDefinitions") {
            normalize_container(c, host_port_is_container_port);
        }
        for vol in each_object(o, "volumes") {
            if let Some(Value::Object(efs)) = vol.get_mut("efsVolumeConfiguration") {
                drop_if(efs, "rootDirectory", &Value::from("/"));
            }
        }
    }
    canonical(v)
}

fn normalize_container(c: &mut Map<String, Value>, host_port_is_container_port: bool) {
    drop_if(c, "essential", &Value::Bool(true));
    drop_if(c, "cpu", &Value::from(0));
    drop_if(c, "versionConsistency", &Value::from("enabled"));
    for p in each_object(c, "portMappings") {
        drop_if(p, "protocol", &Value::from("tcp"));
        if host_port_is_container_port
            && p.contains_key("hostPort")
            && p.get("hostPort") == p.get("containerPort")
        {
            p.shift_remove("hostPort");
        }
    }
    sort_by_name(c, "environment");
    sort_by_name(c, "secrets");
    if let Some(Value::Object(h)) = c.get_mut("healthCheck") {
        drop_if(h, "interval", &Value::from(30));
        drop_if(h, "timeout", &Value::from(5));
        drop_if(h, "retries", &Value::from(3));
        drop_if(h, "startPeriod", &Value::from(0));
    }
    for key in ["mountPoints", "volumesFrom"] {
        for m in each_object(c, key) {
            drop_if(m, "readOnly", &Value::Bool(false));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Service
// ---------------------------------------------------------------------------------------------

/// Fills an `UpdateService` request from our service.json: cluster, service (`serviceName`),
/// taskDefinition = `task_definition` (the registered ARN, overriding the JSON's family),
/// deploymentConfiguration (`maximumPercent`, `minimumHealthyPercent`,
/// `deploymentCircuitBreaker`), `networkConfiguration.awsvpcConfiguration`, `loadBalancers`,
/// `healthCheckGracePeriodSeconds`, `platformVersion`, `propagateTags`,
/// `enableECSManagedTags`; desiredCount only when `set_desired_count` (with auto scaling on,
/// setting it would reset the scaled count). Unsupported keys in the JSON: [`ConvertError`].
/// (`launchType`, `deploymentController` and `tags` are create-time only: accepted, not sent.)
pub fn fill_update_service(
    b: UpdateServiceFluentBuilder,
    service: &serde_json::Value,
    task_definition: &str,
    set_desired_count: bool,
) -> Result<UpdateServiceFluentBuilder, ConvertError> {
    let mut f = Fields::new(service, String::new())?;
    let mut b = b
        .set_cluster(f.string("cluster")?)
        .service(f.required_string("serviceName")?)
        .task_definition(task_definition);
    // Replaced by the registered revision's ARN; still checked to be a string.
    f.string("taskDefinition")?;
    let desired_count = f.int("desiredCount")?;
    if set_desired_count {
        b = b.set_desired_count(desired_count);
    }
    for create_only in ["launchType", "deploymentController", "tags"] {
        f.accept(create_only);
    }
    let b = b
        .set_deployment_configuration(
            f.nested("deploymentConfiguration", deployment_configuration)?,
        )
        .set_network_configuration(f.nested("networkConfiguration", network_configuration)?)
        .set_load_balancers(f.list("loadBalancers", load_balancer)?)
        .set_health_check_grace_period_seconds(f.int("healthCheckGracePeriodSeconds")?)
        .set_platform_version(f.string("platformVersion")?)
        .set_propagate_tags(f.enumeration("propagateTags", ecs::PropagateTags::values())?)
        .set_enable_ecs_managed_tags(f.bool("enableECSManagedTags")?);
    f.finish()?;
    Ok(b)
}

fn deployment_configuration(mut f: Fields<'_>) -> Result<ecs::DeploymentConfiguration> {
    let d = ecs::DeploymentConfiguration::builder()
        .set_strategy(f.enumeration("strategy", ecs::DeploymentStrategy::values())?)
        .set_maximum_percent(f.int("maximumPercent")?)
        .set_minimum_healthy_percent(f.int("minimumHealthyPercent")?)
        .set_bake_time_in_minutes(f.int("bakeTimeInMinutes")?)
        .set_canary_configuration(f.nested("canaryConfiguration", |mut c| {
            let config = ecs::CanaryConfiguration::builder()
                .set_canary_percent(c.float("canaryPercent")?)
                .set_canary_bake_time_in_minutes(c.int("canaryBakeTimeInMinutes")?)
                .build();
            c.finish()?;
            Ok(config)
        })?)
        .set_linear_configuration(f.nested("linearConfiguration", |mut l| {
            let config = ecs::LinearConfiguration::builder()
                .set_step_percent(l.float("stepPercent")?)
                .set_step_bake_time_in_minutes(l.int("stepBakeTimeInMinutes")?)
                .build();
            l.finish()?;
            Ok(config)
        })?)
        .set_lifecycle_hooks(f.list("lifecycleHooks", lifecycle_hook)?)
        .set_alarms(f.nested("alarms", |mut a| {
            let alarms = ecs::DeploymentAlarms::builder()
                .set_alarm_names(Some(
                    a.strings("alarmNames")?
                        .ok_or_else(|| error(a.at("alarmNames"), "required but missing"))?,
                ))
                .enable(a.required_bool("enable")?)
                .rollback(a.required_bool("rollback")?);
            let path = a.path.clone();
            a.finish()?;
            built(alarms.build(), &path)
        })?)
        .set_deployment_circuit_breaker(f.nested("deploymentCircuitBreaker", |mut c| {
            let breaker = ecs::DeploymentCircuitBreaker::builder()
                .enable(c.required_bool("enable")?)
                .rollback(c.required_bool("rollback")?)
                .build();
            c.finish()?;
            Ok(breaker)
        })?)
        .build();
    f.finish()?;
    Ok(d)
}

/// A lifecycle hook of a native deployment (`PAUSE`, or a Lambda by `hookTargetArn`).
fn lifecycle_hook(mut f: Fields<'_>) -> Result<ecs::DeploymentLifecycleHook> {
    let h = ecs::DeploymentLifecycleHook::builder()
        .set_target_type(f.enumeration(
            "targetType",
            ecs::DeploymentLifecycleHookTargetType::values(),
        )?)
        .set_hook_target_arn(f.string("hookTargetArn")?)
        .set_role_arn(f.string("roleArn")?)
        .set_lifecycle_stages(f.enum_list(
            "lifecycleStages",
            ecs::DeploymentLifecycleHookStage::values(),
        )?)
        .set_timeout_configuration(f.nested("timeoutConfiguration", |mut t| {
            let c = ecs::DeploymentLifecycleHookTimeoutConfiguration::builder()
                .set_timeout_in_minutes(t.int("timeoutInMinutes")?)
                .set_action(t.enumeration("action", ecs::DeploymentLifecycleHookAction::values())?)
                .build();
            t.finish()?;
            Ok(c)
        })?)
        .build();
    f.finish()?;
    Ok(h)
}

fn network_configuration(mut f: Fields<'_>) -> Result<ecs::NetworkConfiguration> {
    let n = ecs::NetworkConfiguration::builder()
        .set_awsvpc_configuration(f.nested("awsvpcConfiguration", |mut a| {
            let subnets = a
                .strings("subnets")?
                .ok_or_else(|| error(a.at("subnets"), "required but missing"))?;
            let c = ecs::AwsVpcConfiguration::builder()
                .set_subnets(Some(subnets))
                .set_security_groups(a.strings("securityGroups")?)
                .set_assign_public_ip(
                    a.enumeration("assignPublicIp", ecs::AssignPublicIp::values())?,
                );
            let path = a.path.clone();
            a.finish()?;
            built(c.build(), &path)
        })?)
        .build();
    f.finish()?;
    Ok(n)
}

fn load_balancer(mut f: Fields<'_>) -> Result<ecs::LoadBalancer> {
    let l = ecs::LoadBalancer::builder()
        .set_target_group_arn(f.string("targetGroupArn")?)
        .set_load_balancer_name(f.string("loadBalancerName")?)
        .set_container_name(f.string("containerName")?)
        .set_container_port(f.int("containerPort")?)
        .set_advanced_configuration(f.nested("advancedConfiguration", |mut a| {
            let c = ecs::AdvancedConfiguration::builder()
                .set_alternate_target_group_arn(a.string("alternateTargetGroupArn")?)
                .set_production_listener_rule(a.string("productionListenerRule")?)
                .set_test_listener_rule(a.string("testListenerRule")?)
                .set_role_arn(a.string("roleArn")?)
                .build();
            a.finish()?;
            Ok(c)
        })?)
        .build();
    f.finish()?;
    Ok(l)
}

/// The live service's settings as JSON in the shape of our service.json, restricted to the
/// fields [`fill_update_service`] sends (so the two compare): `deploymentConfiguration` (the
/// three fields), `networkConfiguration`, `loadBalancers`, `healthCheckGracePeriodSeconds`,
/// `platformVersion`. Canonical form (see [`service_settings_from_rendered`]).
pub fn service_settings_to_json(s: &aws_sdk_ecs::types::Service) -> serde_json::Value {
    let mut o = Out::default();
    if let Some(d) = s.deployment_configuration() {
        let mut p = Out::default();
        p.opt("maximumPercent", d.maximum_percent());
        p.opt("minimumHealthyPercent", d.minimum_healthy_percent());
        if let Some(c) = d.deployment_circuit_breaker() {
            let mut b = Out::default();
            b.put("enable", c.enable());
            b.put("rollback", c.rollback());
            p.put("deploymentCircuitBreaker", b.done());
        }
        o.put("deploymentConfiguration", p.done());
    }
    if let Some(a) = s
        .network_configuration()
        .and_then(ecs::NetworkConfiguration::awsvpc_configuration)
    {
        let mut p = Out::default();
        p.strings("subnets", a.subnets());
        p.strings("securityGroups", a.security_groups());
        p.str(
            "assignPublicIp",
            a.assign_public_ip().map(ecs::AssignPublicIp::as_str),
        );
        let mut n = Out::default();
        n.put("awsvpcConfiguration", p.done());
        o.put("networkConfiguration", n.done());
    }
    o.list(
        "loadBalancers",
        s.load_balancers().iter().map(|l| {
            let mut p = Out::default();
            p.str("targetGroupArn", l.target_group_arn());
            p.str("loadBalancerName", l.load_balancer_name());
            p.str("containerName", l.container_name());
            p.opt("containerPort", l.container_port());
            p.done()
        }),
    );
    o.opt(
        "healthCheckGracePeriodSeconds",
        s.health_check_grace_period_seconds(),
    );
    o.str("platformVersion", s.platform_version());
    canonical_settings(o.done())
}

/// Same fields as [`service_settings_to_json`], taken from our rendered service.json, in the
/// same canonical form: subnets, security groups and load balancers sorted; values equal to the
/// ECS defaults dropped (a circuit breaker with `enable` and `rollback` false, `assignPublicIp:
/// "DISABLED"`, `healthCheckGracePeriodSeconds: 0`), as are nulls and empty arrays/objects.
pub fn service_settings_from_rendered(service: &serde_json::Value) -> serde_json::Value {
    fn pick(v: Option<&Value>, keys: &[&str]) -> Value {
        let mut o = Map::new();
        if let Some(Value::Object(m)) = v {
            for &k in keys {
                if let Some(x) = m.get(k) {
                    o.insert(k.to_owned(), x.clone());
                }
            }
        }
        Value::Object(o)
    }
    let mut o = Map::new();
    if let Some(d) = service.get("deploymentConfiguration") {
        let mut p = pick(Some(d), &["maximumPercent", "minimumHealthyPercent"]);
        if let (Some(c), Value::Object(p)) = (d.get("deploymentCircuitBreaker"), &mut p) {
            p.insert(
                "deploymentCircuitBreaker".to_owned(),
                pick(Some(c), &["enable", "rollback"]),
            );
        }
        o.insert("deploymentConfiguration".to_owned(), p);
    }
    if let Some(a) = service.pointer("/networkConfiguration/awsvpcConfiguration") {
        let mut n = Map::new();
        n.insert(
            "awsvpcConfiguration".to_owned(),
            pick(Some(a), &["subnets", "securityGroups", "assignPublicIp"]),
        );
        o.insert("networkConfiguration".to_owned(), Value::Object(n));
    }
    if let Some(Value::Array(lbs)) = service.get("loadBalancers") {
        let keys = [
            "targetGroupArn",
            "loadBalancerName",
            "containerName",
            "containerPort",
        ];
        o.insert(
            "loadBalancers".to_owned(),
            lbs.iter().map(|l| pick(Some(l), &keys)).collect(),
        );
    }
    for key in ["healthCheckGracePeriodSeconds", "platformVersion"] {
        if let Some(v) = service.get(key) {
            o.insert(key.to_owned(), v.clone());
        }
    }
    canonical_settings(Value::Object(o))
}

fn canonical_settings(v: Value) -> Value {
    let mut v = canonical(v);
    if let Value::Object(o) = &mut v {
        if let Some(Value::Object(d)) = o.get_mut("deploymentConfiguration") {
            let off = serde_json::json!({"enable": false, "rollback": false});
            drop_if(d, "deploymentCircuitBreaker", &off);
        }
        if let Some(Value::Object(a)) = o
            .get_mut("networkConfiguration")
            .and_then(|n| n.get_mut("awsvpcConfiguration"))
        {
            drop_if(a, "assignPublicIp", &Value::from("DISABLED"));
            for key in ["subnets", "securityGroups"] {
                if let Some(Value::Array(items)) = a.get_mut(key) {
                    items.sort_by_key(ToString::to_string);
                }
            }
        }
        if let Some(Value::Array(lbs)) = o.get_mut("loadBalancers") {
            lbs.sort_by_key(ToString::to_string);
        }
        drop_if(o, "healthCheckGracePeriodSeconds", &Value::from(0));
    }
    canonical(v)
}

// ---------------------------------------------------------------------------------------------
// Application Auto Scaling
// ---------------------------------------------------------------------------------------------

fn api_error<E>(operation: &'static str, context: Option<&str>, e: E) -> ScalingError
where
    E: std::error::Error + Send + Sync + 'static,
{
    let detail = aws_sdk_applicationautoscaling::error::DisplayErrorContext(&e).to_string();
    let message = match context {
        Some(c) => format!("{c}: {detail}"),
        None => detail,
    };
    ScalingError::Api {
        operation,
        message,
        source: Box::new(e),
    }
}

/// App Auto Scaling: from our scaling.json (`scalableTarget` and `policies`, with the API's
/// `PascalCase` keys), the `RegisterScalableTarget` and `PutScalingPolicy` requests, sent with
/// `client`. The whole JSON is converted before the first call. A policy's
/// `ServiceNamespace`/`ResourceId`/`ScalableDimension` default to the target's. Returns the
/// number of calls made.
pub async fn apply_scaling(
    client: &aws_sdk_applicationautoscaling::Client,
    scaling: &serde_json::Value,
) -> Result<usize, ScalingError> {
    let mut f = Fields::new(scaling, String::new())?;
    let target_path = f.at("scalableTarget");
    let mut t = Fields::new(f.required("scalableTarget")?, target_path)?;
    let namespace: aas::ServiceNamespace =
        t.required_enum("ServiceNamespace", aas::ServiceNamespace::values())?;
    let resource_id = t.required_string("ResourceId")?;
    let dimension: aas::ScalableDimension =
        t.required_enum("ScalableDimension", aas::ScalableDimension::values())?;
    let register = client
        .register_scalable_target()
        .service_namespace(namespace.clone())
        .resource_id(&resource_id)
        .scalable_dimension(dimension.clone())
        .set_min_capacity(t.int("MinCapacity")?)
        .set_max_capacity(t.int("MaxCapacity")?)
        .set_role_arn(t.string("RoleARN")?)
        .set_suspended_state(t.nested("SuspendedState", |mut s| {
            let state = aas::SuspendedState::builder()
                .set_dynamic_scaling_in_suspended(s.bool("DynamicScalingInSuspended")?)
                .set_dynamic_scaling_out_suspended(s.bool("DynamicScalingOutSuspended")?)
                .set_scheduled_scaling_suspended(s.bool("ScheduledScalingSuspended")?)
                .build();
            s.finish()?;
            Ok(state)
        })?)
        .set_tags(t.string_map("Tags")?);
    t.finish()?;

    let policies = f
        .list("policies", |mut p| {
            let name = p.required_string("PolicyName")?;
            let request = client
                .put_scaling_policy()
                .policy_name(&name)
                .service_namespace(
                    p.enumeration("ServiceNamespace", aas::ServiceNamespace::values())?
                        .unwrap_or_else(|| namespace.clone()),
                )
                .resource_id(
                    p.string("ResourceId")?
                        .unwrap_or_else(|| resource_id.clone()),
                )
                .scalable_dimension(
                    p.enumeration("ScalableDimension", aas::ScalableDimension::values())?
                        .unwrap_or_else(|| dimension.clone()),
                )
                .set_policy_type(p.enumeration("PolicyType", aas::PolicyType::values())?)
                .set_target_tracking_scaling_policy_configuration(
                    p.nested("TargetTrackingScalingPolicyConfiguration", target_tracking)?,
                )
                .set_step_scaling_policy_configuration(
                    p.nested("StepScalingPolicyConfiguration", step_scaling)?,
                );
            p.finish()?;
            Ok((name, request))
        })?
        .unwrap_or_default();
    f.finish()?;

    register
        .send()
        .await
        .map_err(|e| api_error("RegisterScalableTarget", Some(&resource_id), e))?;
    let mut calls = 1;
    for (name, request) in policies {
        request
            .send()
            .await
            .map_err(|e| api_error("PutScalingPolicy", Some(&name), e))?;
        calls += 1;
    }
    Ok(calls)
}

fn target_tracking(mut f: Fields<'_>) -> Result<aas::TargetTrackingScalingPolicyConfiguration> {
    let target_path = f.at("TargetValue");
    let target = f
        .float("TargetValue")?
        .ok_or_else(|| error(target_path, "required but missing"))?;
    let c = aas::TargetTrackingScalingPolicyConfiguration::builder()
        .target_value(target)
        .set_predefined_metric_specification(f.nested(
            "PredefinedMetricSpecification",
            |mut m| {
                let s = aas::PredefinedMetricSpecification::builder()
                    .predefined_metric_type(
                        m.required_enum("PredefinedMetricType", aas::MetricType::values())?,
                    )
                    .set_resource_label(m.string("ResourceLabel")?);
                let path = m.path.clone();
                m.finish()?;
                built(s.build(), &path)
            },
        )?)
        .set_scale_in_cooldown(f.int("ScaleInCooldown")?)
        .set_scale_out_cooldown(f.int("ScaleOutCooldown")?)
        .set_disable_scale_in(f.bool("DisableScaleIn")?);
    let path = f.path.clone();
    f.finish()?;
    built(c.build(), &path)
}

fn step_scaling(mut f: Fields<'_>) -> Result<aas::StepScalingPolicyConfiguration> {
    let c = aas::StepScalingPolicyConfiguration::builder()
        .set_adjustment_type(f.enumeration("AdjustmentType", aas::AdjustmentType::values())?)
        .set_step_adjustments(f.list("StepAdjustments", |mut s| {
            let a = aas::StepAdjustment::builder()
                .set_metric_interval_lower_bound(s.float("MetricIntervalLowerBound")?)
                .set_metric_interval_upper_bound(s.float("MetricIntervalUpperBound")?)
                .scaling_adjustment(s.required_int("ScalingAdjustment")?);
            let path = s.path.clone();
            s.finish()?;
            built(a.build(), &path)
        })?)
        .set_min_adjustment_magnitude(f.int("MinAdjustmentMagnitude")?)
        .set_cooldown(f.int("Cooldown")?)
        .set_metric_aggregation_type(f.enumeration(
            "MetricAggregationType",
            aas::MetricAggregationType::values(),
        )?)
        .build();
    f.finish()?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionInputBuilder;
    use serde_json::json;

    /// The JSON of a rendered artifact, from its insta snapshot (after the `---` header).
    fn snapshot(text: &str) -> Value {
        let body = text.splitn(3, "---\n").nth(2).expect("snapshot header");
        serde_json::from_str(body).expect("snapshot JSON")
    }

    fn staging_td() -> Value {
        snapshot(include_str!(
            "../../../tests/snapshots/render@staging__task-definition.json.snap"
        ))
    }

    fn production_td() -> Value {
        snapshot(include_str!(
            "../../../tests/snapshots/render@production__task-definition.json.snap"
        ))
    }

    fn staging_service() -> Value {
        snapshot(include_str!(
            "../../../tests/snapshots/render@staging__service.json.snap"
        ))
    }

    fn production_service() -> Value {
        snapshot(include_str!(
            "../../../tests/snapshots/render@production__service.json.snap"
        ))
    }

    fn staging_scaling() -> Value {
        snapshot(include_str!(
            "../../../tests/snapshots/render@staging__scaling.json.snap"
        ))
    }

    fn ecs_client() -> aws_sdk_ecs::Client {
        aws_sdk_ecs::Client::from_conf(
            aws_sdk_ecs::Config::builder()
                .behavior_version(aws_sdk_ecs::config::BehaviorVersion::latest())
                .region(aws_sdk_ecs::config::Region::new("us-east-1"))
                .build(),
        )
    }

    fn fill(td: &Value) -> Result<RegisterTaskDefinitionFluentBuilder, ConvertError> {
        fill_register(ecs_client().register_task_definition(), td, &[])
    }

    fn fill_err(td: &Value) -> ConvertError {
        fill(td).expect_err("conversion should fail")
    }

    /// What ECS adds to a container when it registers it: `essential`, `hostPort` (awsvpc),
    /// `protocol`, health check defaults, empty lists.
    fn with_ecs_defaults(mut c: ecs::ContainerDefinition) -> ecs::ContainerDefinition {
        c.essential.get_or_insert(true);
        for p in c.port_mappings.iter_mut().flatten() {
            if p.host_port.is_none() {
                p.host_port = p.container_port;
            }
            p.protocol.get_or_insert(ecs::TransportProtocol::Tcp);
        }
        if let Some(h) = c.health_check.as_mut() {
            h.interval.get_or_insert(30);
            h.timeout.get_or_insert(5);
            h.retries.get_or_insert(3);
        }
        c.environment.get_or_insert_with(Vec::new);
        c.mount_points.get_or_insert_with(Vec::new);
        c.volumes_from.get_or_insert_with(Vec::new);
        c.system_controls.get_or_insert_with(Vec::new);
        c
    }

    /// The task definition ECS would return for this request, with the API-filled fields.
    fn registered(input: &RegisterTaskDefinitionInputBuilder) -> ecs::TaskDefinition {
        let containers = input
            .get_container_definitions()
            .clone()
            .unwrap_or_default();
        ecs::TaskDefinition::builder()
            .task_definition_arn(
                "arn:aws:ecs:us-east-1:123456789012:task-definition/movieverse-staging:7",
            )
            .revision(7)
            .status(ecs::TaskDefinitionStatus::Active)
            .compatibilities(ecs::Compatibility::Ec2)
            .compatibilities(ecs::Compatibility::Fargate)
            .requires_attributes(
                ecs::Attribute::builder()
                    .name("com.amazonaws.ecs.capability.docker-remote-api.1.18")
                    .build()
                    .unwrap(),
            )
            .registered_at(aws_smithy_types::DateTime::from_secs(1_760_000_000))
            .registered_by("arn:aws:iam::123456789012:role/deployer")
            .set_family(input.get_family().clone())
            .set_task_role_arn(input.get_task_role_arn().clone())
            .set_execution_role_arn(input.get_execution_role_arn().clone())
            .set_network_mode(input.get_network_mode().clone())
            .set_container_definitions(Some(
                containers.into_iter().map(with_ecs_defaults).collect(),
            ))
            .set_volumes(input.get_volumes().clone())
            .set_placement_constraints(input.get_placement_constraints().clone())
            .set_requires_compatibilities(input.get_requires_compatibilities().clone())
            .set_cpu(input.get_cpu().clone())
            .set_memory(input.get_memory().clone())
            .set_pid_mode(input.get_pid_mode().clone())
            .set_ipc_mode(input.get_ipc_mode().clone())
            .set_ephemeral_storage(input.get_ephemeral_storage().clone())
            .set_runtime_platform(input.get_runtime_platform().clone())
            .set_enable_fault_injection(input.get_enable_fault_injection().or(Some(false)))
            .build()
    }

    fn assert_round_trip(td: &Value) {
        let b = fill(td).expect("fill_register");
        let live = task_definition_to_json(&registered(b.as_input()));
        assert_eq!(
            normalize(&live),
            normalize(td),
            "live:\n{}\nrendered:\n{}",
            serde_json::to_string_pretty(&normalize(&live)).unwrap(),
            serde_json::to_string_pretty(&normalize(td)).unwrap()
        );
    }

    /// Every field `fill_register` supports, at least once.
    fn kitchen_sink() -> Value {
        serde_json::from_str(
            r#"{
            "family": "sink",
            "taskRoleArn": "arn:aws:iam::123456789012:role/task",
            "executionRoleArn": "arn:aws:iam::123456789012:role/exec",
            "networkMode": "bridge",
            "requiresCompatibilities": ["EC2"],
            "cpu": 1024,
            "memory": "2048",
            "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
            "pidMode": "task",
            "ipcMode": "none",
            "ephemeralStorage": {"sizeInGiB": 30},
            "enableFaultInjection": true,
            "placementConstraints": [{"type": "memberOf", "expression": "attribute:ecs.instance-type =~ t3.*"}],
            "volumes": [
                {"name": "scratch"},
                {"name": "hostdir", "host": {"sourcePath": "/var/data"}},
                {"name": "docker", "dockerVolumeConfiguration": {
                    "scope": "shared", "autoprovision": true, "driver": "local",
                    "driverOpts": {"type": "tmpfs"}, "labels": {"a": "b"}}},
                {"name": "efs", "efsVolumeConfiguration": {
                    "fileSystemId": "fs-1234", "rootDirectory": "/data", "transitEncryption": "ENABLED",
                    "transitEncryptionPort": 2049,
                    "authorizationConfig": {"accessPointId": "fsap-1", "iam": "ENABLED"}}},
                {"name": "later", "configuredAtLaunch": true}
            ],
            "containerDefinitions": [{
                "name": "app",
                "image": "example/app:1",
                "repositoryCredentials": {"credentialsParameter": "arn:aws:secretsmanager:us-east-1:123456789012:secret:creds"},
                "essential": true,
                "cpu": 256,
                "memory": 512,
                "memoryReservation": 256,
                "links": ["sidecar"],
                "portMappings": [
                    {"name": "http", "containerPort": 8080, "hostPort": 0, "protocol": "tcp", "appProtocol": "http2"},
                    {"containerPortRange": "9000-9010", "protocol": "udp"}
                ],
                "restartPolicy": {"enabled": true, "ignoredExitCodes": [0, 143], "restartAttemptPeriod": 60},
                "entryPoint": ["/bin/sh", "-c"],
                "command": ["exec app"],
                "workingDirectory": "/srv",
                "environment": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}],
                "environmentFiles": [{"value": "arn:aws:s3:::bucket/app.env", "type": "s3"}],
                "secrets": [{"name": "TOKEN", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/token"}],
                "mountPoints": [{"sourceVolume": "scratch", "containerPath": "/tmp/scratch", "readOnly": true}],
                "volumesFrom": [{"sourceContainer": "sidecar", "readOnly": false}],
                "dependsOn": [{"containerName": "sidecar", "condition": "HEALTHY"}],
                "startTimeout": 30,
                "stopTimeout": 20,
                "versionConsistency": "disabled",
                "hostname": "app",
                "user": "1000:1000",
                "disableNetworking": false,
                "privileged": false,
                "readonlyRootFilesystem": true,
                "dnsServers": ["10.0.0.2"],
                "dnsSearchDomains": ["example.internal"],
                "extraHosts": [{"hostname": "db", "ipAddress": "10.0.0.5"}],
                "dockerSecurityOptions": ["no-new-privileges"],
                "interactive": false,
                "pseudoTerminal": false,
                "dockerLabels": {"z": "last", "a": "first"},
                "ulimits": [{"name": "nofile", "softLimit": 65536, "hardLimit": 65536}],
                "logConfiguration": {
                    "logDriver": "awsfirelens",
                    "options": {"Name": "datadog"},
                    "secretOptions": [{"name": "apikey", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/dd"}]
                },
                "healthCheck": {"command": ["CMD", "true"], "interval": 10, "timeout": 2, "retries": 5, "startPeriod": 15},
                "systemControls": [{"namespace": "net.core.somaxconn", "value": "1024"}],
                "resourceRequirements": [{"value": "1", "type": "GPU"}],
                "credentialSpecs": ["credentialspecdomainless:arn:aws:s3:::bucket/spec.json"]
            }, {
                "name": "sidecar",
                "image": "fluent/fluent-bit:3",
                "essential": false,
                "firelensConfiguration": {"type": "fluentbit", "options": {"enable-ecs-log-metadata": "true"}},
                "healthCheck": {"command": ["CMD", "true"]}
            }],
            "tags": [{"key": "app", "value": "sink"}]
        }"#,
        )
        .unwrap()
    }

    #[test]
    fn round_trip_staging_task_definition() {
        assert_round_trip(&staging_td());
    }

    #[test]
    fn round_trip_production_task_definition() {
        assert_round_trip(&production_td());
    }

    #[test]
    fn round_trip_every_supported_field() {
        assert_round_trip(&kitchen_sink());
    }

    #[test]
    fn fill_register_carries_fields_and_tags() {
        let td = staging_td();
        let extra = [
            ("commit".to_owned(), "4f2b9c1".to_owned()),
            ("managed-by".to_owned(), "override".to_owned()),
        ];
        let b = fill_register(ecs_client().register_task_definition(), &td, &extra).unwrap();
        let input = b.as_input();
        assert_eq!(input.get_family().as_deref(), Some("movieverse-staging"));
        assert_eq!(input.get_cpu().as_deref(), Some("512"));
        assert_eq!(input.get_memory().as_deref(), Some("1024"));
        assert_eq!(input.get_network_mode(), &Some(ecs::NetworkMode::Awsvpc));
        assert_eq!(
            input.get_requires_compatibilities(),
            &Some(vec![ecs::Compatibility::Fargate])
        );
        let containers = input.get_container_definitions().as_ref().unwrap();
        assert_eq!(containers.len(), 2);
        let app = &containers[0];
        assert_eq!(app.name(), Some("movieverse-app"));
        assert_eq!(app.essential(), Some(true));
        assert_eq!(app.port_mappings()[0].container_port(), Some(5000));
        assert_eq!(
            app.port_mappings()[0].app_protocol(),
            Some(&ecs::ApplicationProtocol::Http)
        );
        assert_eq!(app.environment().len(), 4);
        assert_eq!(app.secrets()[0].name(), "DATABASE_URL");
        assert_eq!(app.health_check().unwrap().start_period(), Some(60));
        assert_eq!(
            app.log_configuration().unwrap().log_driver(),
            &ecs::LogDriver::Awslogs
        );
        assert_eq!(
            app.docker_labels().unwrap()["com.datadoghq.tags.version"],
            "4f2b9c1"
        );
        assert_eq!(containers[1].essential(), Some(false));
        let tags: Vec<(&str, &str)> = input
            .get_tags()
            .as_ref()
            .unwrap()
            .iter()
            .map(|t| (t.key().unwrap(), t.value().unwrap()))
            .collect();
        assert_eq!(
            tags,
            [
                ("app", "movieverse"),
                ("environment", "staging"),
                ("commit", "4f2b9c1"),
                ("managed-by", "override")
            ]
        );
    }

    #[test]
    fn task_cpu_and_memory_accept_numbers() {
        let mut td = staging_td();
        td["cpu"] = json!(512);
        td["memory"] = json!(1024);
        let b = fill(&td).unwrap();
        assert_eq!(b.as_input().get_cpu().as_deref(), Some("512"));
        assert_eq!(b.as_input().get_memory().as_deref(), Some("1024"));
        assert_eq!(normalize(&td), normalize(&staging_td()));
    }

    #[test]
    fn normalize_ignores_api_fields_and_defaults() {
        let rendered = json!({
            "family": "f",
            "networkMode": "awsvpc",
            "cpu": "256",
            "containerDefinitions": [{
                "name": "app", "image": "i",
                "portMappings": [{"containerPort": 80}],
                "environment": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}],
                "secrets": [{"name": "Y", "valueFrom": "arn:y"}, {"name": "X", "valueFrom": "arn:x"}],
                "command": null
            }],
            "tags": [{"key": "app", "value": "f"}]
        });
        let live = json!({
            "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/f:3",
            "revision": 3,
            "status": "ACTIVE",
            "requiresAttributes": [{"name": "ecs.capability.task-eni"}],
            "compatibilities": ["EC2", "FARGATE"],
            "registeredAt": "2025-01-01T00:00:00Z",
            "registeredBy": "arn:aws:iam::123456789012:user/x",
            "family": "f",
            "networkMode": "awsvpc",
            "cpu": 256,
            "volumes": [],
            "placementConstraints": [],
            "containerDefinitions": [{
                "image": "i", "name": "app", "cpu": 0, "essential": true,
                "portMappings": [{"containerPort": 80, "hostPort": 80, "protocol": "tcp"}],
                "environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "secrets": [{"name": "X", "valueFrom": "arn:x"}, {"name": "Y", "valueFrom": "arn:y"}],
                "mountPoints": [], "volumesFrom": [], "dockerLabels": {}
            }]
        });
        assert_eq!(normalize(&rendered), normalize(&live));

        // A real difference still shows.
        let mut changed = live.clone();
        changed["containerDefinitions"][0]["image"] = json!("i2");
        assert_ne!(normalize(&rendered), normalize(&changed));
        // hostPort different from containerPort is not a default.
        let mut changed = live.clone();
        changed["containerDefinitions"][0]["portMappings"][0]["hostPort"] = json!(8080);
        assert_ne!(normalize(&rendered), normalize(&changed));
        // In bridge mode, hostPort equal to containerPort is meaningful.
        let mut bridge = live;
        bridge["networkMode"] = json!("bridge");
        let mut bridge_rendered = rendered;
        bridge_rendered["networkMode"] = json!("bridge");
        assert_ne!(normalize(&bridge_rendered), normalize(&bridge));
    }

    #[test]
    fn normalize_is_sorted_and_idempotent() {
        let n = normalize(&staging_td());
        assert_eq!(normalize(&n), n);
        let keys: Vec<&String> = n.as_object().unwrap().keys().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        let env: Vec<&str> = n["containerDefinitions"][0]["environment"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(env, ["APP_ENV", "FEATURE_FLAGS", "LOG_LEVEL", "PORT"]);
        assert!(n.get("tags").is_none());
    }

    #[test]
    fn unsupported_field_is_an_error_naming_its_path() {
        let mut td = staging_td();
        td["containerDefinitions"][0]["linuxParameters"] = json!({"initProcessEnabled": true});
        let e = fill_err(&td);
        assert_eq!(e.path, "containerDefinitions[0].linuxParameters");
        assert!(e.message.contains("not supported yet"), "{e}");
        assert!(
            e.to_string()
                .starts_with("containerDefinitions[0].linuxParameters: ")
        );

        let mut td = staging_td();
        td["proxyConfiguration"] = json!({"containerName": "envoy"});
        assert_eq!(fill_err(&td).path, "proxyConfiguration");

        let mut td = staging_td();
        td["containerDefinitions"][1]["logConfiguration"]["mode"] = json!("non-blocking");
        assert_eq!(
            fill_err(&td).path,
            "containerDefinitions[1].logConfiguration.mode"
        );

        let mut td = staging_td();
        td["volumes"] = json!([{"name": "fsx", "fsxWindowsFileServerVolumeConfiguration": {}}]);
        assert_eq!(
            fill_err(&td).path,
            "volumes[0].fsxWindowsFileServerVolumeConfiguration"
        );

        // null counts as absent
        let mut td = staging_td();
        td["containerDefinitions"][0]["linuxParameters"] = Value::Null;
        fill(&td).unwrap();
    }

    #[test]
    fn wrong_types_and_missing_fields_are_errors() {
        let mut td = staging_td();
        td["containerDefinitions"][0]["portMappings"][0]["containerPort"] = json!("5000");
        let e = fill_err(&td);
        assert_eq!(
            e.path,
            "containerDefinitions[0].portMappings[0].containerPort"
        );
        assert!(e.message.contains("expected an integer"), "{e}");

        let mut td = staging_td();
        td["networkMode"] = json!("awsvcp");
        let e = fill_err(&td);
        assert_eq!(e.path, "networkMode");
        assert!(e.message.contains("awsvpc"), "{e}");

        let mut td = staging_td();
        td["containerDefinitions"][0]["secrets"][2]
            .as_object_mut()
            .unwrap()
            .shift_remove("valueFrom");
        let e = fill_err(&td);
        assert_eq!(e.path, "containerDefinitions[0].secrets[2].valueFrom");
        assert!(e.message.contains("required"), "{e}");

        let mut td = staging_td();
        td["containerDefinitions"][0]["dockerLabels"]["x"] = json!(1);
        assert_eq!(fill_err(&td).path, "containerDefinitions[0].dockerLabels.x");

        let mut td = staging_td();
        td["containerDefinitions"] = json!([]);
        assert_eq!(fill_err(&td).path, "containerDefinitions");

        let e = fill_err(&json!([1, 2]));
        assert_eq!(e.path, "(top level)");
    }

    #[test]
    fn fill_update_service_sets_the_settings() {
        let service = staging_service();
        let arn = "arn:aws:ecs:us-east-1:123456789012:task-definition/movieverse-staging:8";
        let b = fill_update_service(ecs_client().update_service(), &service, arn, false).unwrap();
        let input = b.as_input();
        assert_eq!(input.get_cluster().as_deref(), Some("movieverse-staging"));
        assert_eq!(input.get_service().as_deref(), Some("movieverse-app"));
        assert_eq!(input.get_task_definition().as_deref(), Some(arn));
        assert_eq!(input.get_desired_count(), &None);
        let d = input.get_deployment_configuration().as_ref().unwrap();
        assert_eq!(d.maximum_percent(), Some(150));
        assert_eq!(d.minimum_healthy_percent(), Some(100));
        let breaker = d.deployment_circuit_breaker().unwrap();
        assert!(breaker.enable() && breaker.rollback());
        let vpc = input
            .get_network_configuration()
            .as_ref()
            .unwrap()
            .awsvpc_configuration()
            .unwrap();
        assert_eq!(
            vpc.subnets(),
            ["subnet-0a11c0de00000011", "subnet-0a11c0de00000012"]
        );
        assert_eq!(vpc.security_groups(), ["sg-0ecs5000fromalb0001"]);
        assert_eq!(vpc.assign_public_ip(), Some(&ecs::AssignPublicIp::Disabled));
        let lbs = input.get_load_balancers().as_ref().unwrap();
        assert_eq!(lbs[0].container_name(), Some("movieverse-app"));
        assert_eq!(lbs[0].container_port(), Some(5000));
        assert_eq!(input.get_health_check_grace_period_seconds(), &Some(60));
        assert_eq!(input.get_platform_version().as_deref(), Some("LATEST"));
        assert_eq!(
            input.get_propagate_tags(),
            &Some(ecs::PropagateTags::Service)
        );
        assert_eq!(input.get_enable_ecs_managed_tags(), &Some(true));
        // Create-time only: not sent.
        assert_eq!(input.get_deployment_controller(), &None);

        let b = fill_update_service(ecs_client().update_service(), &service, arn, true).unwrap();
        assert_eq!(b.as_input().get_desired_count(), &Some(2));
    }

    #[test]
    fn fill_update_service_rejects_unsupported_keys() {
        let mut service = staging_service();
        service["schedulingStrategy"] = json!("REPLICA");
        let e =
            fill_update_service(ecs_client().update_service(), &service, "arn", false).unwrap_err();
        assert_eq!(e.path, "schedulingStrategy");
        assert!(e.message.contains("not supported yet"), "{e}");

        let mut service = staging_service();
        service["deploymentConfiguration"]["linearConfiguration"] =
            json!({"stepPercent": 10.0, "stepBakeTimeInMinutes": 6, "stepCount": 3});
        let e =
            fill_update_service(ecs_client().update_service(), &service, "arn", false).unwrap_err();
        assert_eq!(
            e.path,
            "deploymentConfiguration.linearConfiguration.stepCount"
        );

        let mut service = staging_service();
        service["desiredCount"] = json!("two");
        let e =
            fill_update_service(ecs_client().update_service(), &service, "arn", false).unwrap_err();
        assert_eq!(e.path, "desiredCount");
    }

    /// A live service as `DescribeServices` would return it for the rendered one.
    fn live_service(rendered: &Value, breaker: Option<(bool, bool)>) -> ecs::Service {
        let r = rendered;
        let mut d = ecs::DeploymentConfiguration::builder()
            .maximum_percent(
                i32::try_from(
                    r["deploymentConfiguration"]["maximumPercent"]
                        .as_i64()
                        .unwrap(),
                )
                .unwrap(),
            )
            .minimum_healthy_percent(100);
        if let Some((enable, rollback)) = breaker {
            d = d.deployment_circuit_breaker(
                ecs::DeploymentCircuitBreaker::builder()
                    .enable(enable)
                    .rollback(rollback)
                    .build(),
            );
        }
        ecs::Service::builder()
            .service_name("movieverse-app")
            .desired_count(7)
            .running_count(7)
            .status("ACTIVE")
            .task_definition(
                "arn:aws:ecs:us-east-1:123456789012:task-definition/movieverse-staging:7",
            )
            .deployment_configuration(d.build())
            .network_configuration(
                ecs::NetworkConfiguration::builder()
                    .awsvpc_configuration(
                        ecs::AwsVpcConfiguration::builder()
                            // DescribeServices does not promise the order.
                            .subnets("subnet-0a11c0de00000012")
                            .subnets("subnet-0a11c0de00000011")
                            .security_groups("sg-0ecs5000fromalb0001")
                            .assign_public_ip(ecs::AssignPublicIp::Disabled)
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .load_balancers(
                ecs::LoadBalancer::builder()
                    .target_group_arn(r["loadBalancers"][0]["targetGroupArn"].as_str().unwrap())
                    .container_name("movieverse-app")
                    .container_port(5000)
                    .build(),
            )
            .health_check_grace_period_seconds(60)
            .platform_version("LATEST")
            .enable_ecs_managed_tags(true)
            .propagate_tags(ecs::PropagateTags::Service)
            .build()
    }

    #[test]
    fn service_settings_compare_equal_for_an_unchanged_service() {
        let staging = staging_service();
        let live = live_service(&staging, Some((true, true)));
        assert_eq!(
            service_settings_to_json(&live),
            service_settings_from_rendered(&staging)
        );
        assert_eq!(
            service_settings_from_rendered(&staging),
            json!({
                "deploymentConfiguration": {
                    "deploymentCircuitBreaker": {"enable": true, "rollback": true},
                    "maximumPercent": 150,
                    "minimumHealthyPercent": 100
                },
                "healthCheckGracePeriodSeconds": 60,
                "loadBalancers": [{
                    "containerName": "movieverse-app",
                    "containerPort": 5000,
                    "targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/movieverse-staging/0123456789abcdef"
                }],
                "networkConfiguration": {"awsvpcConfiguration": {
                    "securityGroups": ["sg-0ecs5000fromalb0001"],
                    "subnets": ["subnet-0a11c0de00000011", "subnet-0a11c0de00000012"]
                }},
                "platformVersion": "LATEST"
            })
        );

        // Blue-green: no circuit breaker rendered; the API reports a disabled one.
        let production = production_service();
        let live = live_service(&production, Some((false, false)));
        assert_eq!(
            service_settings_to_json(&live),
            service_settings_from_rendered(&production)
        );
        let live = live_service(&production, None);
        assert_eq!(
            service_settings_to_json(&live),
            service_settings_from_rendered(&production)
        );
    }

    #[test]
    fn service_settings_show_a_change() {
        let staging = staging_service();
        let live = live_service(&staging, Some((true, false)));
        assert_ne!(
            service_settings_to_json(&live),
            service_settings_from_rendered(&staging)
        );

        let mut changed = staging.clone();
        changed["healthCheckGracePeriodSeconds"] = json!(120);
        let live = live_service(&staging, Some((true, true)));
        assert_ne!(
            service_settings_to_json(&live),
            service_settings_from_rendered(&changed)
        );

        let mut changed = staging;
        changed["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] = json!("ENABLED");
        assert_ne!(
            service_settings_to_json(&live),
            service_settings_from_rendered(&changed)
        );
    }

    mod scaling {
        use super::*;
        use aws_sdk_applicationautoscaling::operation::put_scaling_policy::{
            PutScalingPolicyError, PutScalingPolicyOutput,
        };
        use aws_sdk_applicationautoscaling::operation::register_scalable_target::RegisterScalableTargetOutput;
        use aws_smithy_mocks::{
            MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock,
        };

        fn client(rules: &[&Rule]) -> aws_sdk_applicationautoscaling::Client {
            let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
            for rule in rules {
                interceptor = interceptor.with_rule(rule);
            }
            let conf = aws_sdk_applicationautoscaling::Config::builder()
                .behavior_version(aws_sdk_applicationautoscaling::config::BehaviorVersion::latest())
                .region(aws_sdk_applicationautoscaling::config::Region::new(
                    "us-east-1",
                ))
                .credentials_provider(aws_sdk_applicationautoscaling::config::Credentials::new(
                    "AKIDTEST", "secret", None, None, "test",
                ))
                .http_client(create_mock_http_client())
                .interceptor(interceptor)
                .build();
            aws_sdk_applicationautoscaling::Client::from_conf(conf)
        }

        fn register_rule() -> Rule {
            mock!(aws_sdk_applicationautoscaling::Client::register_scalable_target)
                .match_requests(|r| {
                    r.service_namespace() == Some(&aas::ServiceNamespace::Ecs)
                        && r.resource_id() == Some("service/movieverse-staging/movieverse-app")
                        && r.scalable_dimension()
                            == Some(&aas::ScalableDimension::EcsServiceDesiredCount)
                        && r.min_capacity() == Some(2)
                        && r.max_capacity() == Some(10)
                })
                .then_output(|| RegisterScalableTargetOutput::builder().build())
        }

        #[tokio::test]
        async fn apply_scaling_registers_the_target_and_puts_each_policy() {
            let register = register_rule();
            let put = mock!(aws_sdk_applicationautoscaling::Client::put_scaling_policy)
                .match_requests(|r| {
                    let c = r.target_tracking_scaling_policy_configuration().unwrap();
                    r.resource_id() == Some("service/movieverse-staging/movieverse-app")
                        && r.service_namespace() == Some(&aas::ServiceNamespace::Ecs)
                        && r.policy_type() == Some(&aas::PolicyType::TargetTrackingScaling)
                        && (c.target_value() - 70.0).abs() < f64::EPSILON
                        && r.policy_name() == Some("movieverse-staging-cpu-70")
                        && c.predefined_metric_specification()
                            .unwrap()
                            .predefined_metric_type()
                            == &aas::MetricType::EcsServiceAverageCpuUtilization
                        && c.scale_in_cooldown() == Some(300)
                        && c.scale_out_cooldown() == Some(60)
                })
                .then_output(|| {
                    PutScalingPolicyOutput::builder()
                        .policy_arn("arn:cpu")
                        .build()
                        .unwrap()
                });
            let put_memory = mock!(aws_sdk_applicationautoscaling::Client::put_scaling_policy)
                .match_requests(|r| r.policy_name() == Some("movieverse-staging-memory-80"))
                .then_output(|| {
                    PutScalingPolicyOutput::builder()
                        .policy_arn("arn:mem")
                        .build()
                        .unwrap()
                });
            let client = client(&[&register, &put, &put_memory]);
            let calls = apply_scaling(&client, &staging_scaling()).await.unwrap();
            assert_eq!(calls, 3);
            assert_eq!(register.num_calls(), 1);
            assert_eq!(put.num_calls(), 1);
            assert_eq!(put_memory.num_calls(), 1);
        }

        #[tokio::test]
        async fn apply_scaling_converts_everything_before_the_first_call() {
            let register = register_rule();
            let client = client(&[&register]);
            let mut scaling = staging_scaling();
            scaling["policies"][1]["TargetTrackingScalingPolicyConfiguration"]["CustomizedMetricSpecification"] =
                json!({"MetricName": "x"});
            let e = apply_scaling(&client, &scaling).await.unwrap_err();
            let ScalingError::Convert(c) = e else {
                panic!("expected a conversion error, got {e}")
            };
            assert_eq!(
                c.path,
                "policies[1].TargetTrackingScalingPolicyConfiguration.CustomizedMetricSpecification"
            );
            assert_eq!(register.num_calls(), 0);
        }

        #[tokio::test]
        async fn apply_scaling_reports_the_api_error() {
            let register = register_rule();
            let put = mock!(aws_sdk_applicationautoscaling::Client::put_scaling_policy).then_error(
                || {
                    PutScalingPolicyError::ValidationException(
                        aws_sdk_applicationautoscaling::types::error::ValidationException::builder(
                        )
                        .message("bad cooldown")
                        .build(),
                    )
                },
            );
            let client = client(&[&register, &put]);
            let e = apply_scaling(&client, &staging_scaling())
                .await
                .unwrap_err();
            let ScalingError::Api {
                operation, message, ..
            } = &e
            else {
                panic!("expected an API error, got {e}")
            };
            assert_eq!(*operation, "PutScalingPolicy");
            assert!(
                message.contains("movieverse-staging-cpu-70") && message.contains("bad cooldown"),
                "{message}"
            );
        }
    }
}
