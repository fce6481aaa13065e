# The resource group, the identity, Log Analytics and the container app: one replica of the mirror
# image on Azure Container Apps, with the configuration of deploy/mirror-from-env.toml (shipped in
# the image as /etc/mirror/from-env.toml) filled from environment variables.

data "azurerm_client_config" "current" {}

locals {
  private    = var.atlas_private_link.enabled
  collection = lower(var.mongodb_collection) == "all" ? "*" : var.mongodb_collection
  # Built from the Atlas cluster when not given, as the MongoDB_Fabric_Mirroring app's Terraform
  # does: the private endpoint's SRV string with a private link, the standard one without.
  atlas_srv = var.atlas_cluster_name == null ? null : (
    local.private
    ? data.mongodbatlas_advanced_cluster.atlas[0].connection_strings[0].private_endpoint[0].srv_connection_string
    : data.mongodbatlas_advanced_cluster.atlas[0].connection_strings[0].standard_srv
  )
  mongodb_uri = var.mongodb_connection_string != null ? var.mongodb_connection_string : replace(
    local.atlas_srv, "mongodb+srv://", "mongodb+srv://${var.mongodb_userpass}@"
  )
  landing_zone = var.create_mirrored_database ? replace(
    fabric_mirrored_database.mirror[0].properties.onelake_tables_path, "/Tables", "/Files/LandingZone"
  ) : var.fabric_landing_zone_url
}

resource "azurerm_resource_group" "mirror" {
  name     = var.resource_group_name
  location = var.location
  tags     = var.tags
}

# The identity mirror writes OneLake with (no client secret to leak or rotate); it also pulls the
# image and reads the Key Vault secret.
resource "azurerm_user_assigned_identity" "mirror" {
  name                = "${var.name}-identity"
  location            = azurerm_resource_group.mirror.location
  resource_group_name = azurerm_resource_group.mirror.name
  tags                = var.tags
}

resource "azurerm_role_assignment" "acr_pull" {
  count                = var.container_registry == null ? 0 : 1
  scope                = var.container_registry.id
  role_definition_name = "AcrPull"
  principal_id         = azurerm_user_assigned_identity.mirror.principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_log_analytics_workspace" "mirror" {
  name                = "${var.name}-logs"
  location            = azurerm_resource_group.mirror.location
  resource_group_name = azurerm_resource_group.mirror.name
  sku                 = "PerGB2018"
  retention_in_days   = var.log_retention_days
  tags                = var.tags
}

resource "azurerm_container_app_environment" "mirror" {
  name                       = "${var.name}-env"
  location                   = azurerm_resource_group.mirror.location
  resource_group_name        = azurerm_resource_group.mirror.name
  log_analytics_workspace_id = azurerm_log_analytics_workspace.mirror.id
  # With the private link, the environment runs in the VNet that holds the Atlas endpoint.
  infrastructure_subnet_id       = local.private ? azurerm_subnet.apps[0].id : null
  internal_load_balancer_enabled = local.private ? true : null
  tags                           = var.tags

  workload_profile {
    name                  = "Consumption"
    workload_profile_type = "Consumption"
  }
}

resource "azurerm_container_app" "mirror" {
  name                         = var.name
  container_app_environment_id = azurerm_container_app_environment.mirror.id
  resource_group_name          = azurerm_resource_group.mirror.name
  # One revision at a time, one replica: one writer per table.
  revision_mode         = "Single"
  workload_profile_name = "Consumption"
  tags                  = var.tags

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.mirror.id]
  }

  secret {
    name                = "mongo-uri"
    value               = var.key_vault.enabled ? null : local.mongodb_uri
    key_vault_secret_id = var.key_vault.enabled ? azurerm_key_vault_secret.mongodb_uri[0].versionless_id : null
    identity            = var.key_vault.enabled ? azurerm_user_assigned_identity.mirror.id : null
  }

  dynamic "registry" {
    for_each = var.container_registry == null ? [] : [var.container_registry]
    content {
      server   = registry.value.login_server
      identity = azurerm_user_assigned_identity.mirror.id
    }
  }

  template {
    min_replicas = 1
    max_replicas = 1

    container {
      name   = "mirror"
      image  = var.container_image
      cpu    = var.cpu
      memory = "${var.cpu * 2}Gi"
      args   = ["run", "--config", "/etc/mirror/from-env.toml", "--api-address", "0.0.0.0:8080", "--log-format", "json"]

      env {
        name        = "MONGODB_URI"
        secret_name = "mongo-uri"
      }
      env {
        name  = "MONGODB_DATABASE"
        value = var.mongodb_database
      }
      env {
        name  = "MONGODB_COLLECTION"
        value = local.collection
      }
      env {
        name  = "FABRIC_LANDING_ZONE_URL"
        value = local.landing_zone
      }
      env {
        name  = "AZURE_CLIENT_ID"
        value = azurerm_user_assigned_identity.mirror.client_id
      }
      env {
        name  = "RUST_LOG"
        value = var.log_level
      }

      startup_probe {
        transport               = "HTTP"
        port                    = 8080
        path                    = "/health"
        interval_seconds        = 10
        failure_count_threshold = 10
      }
      liveness_probe {
        transport               = "HTTP"
        port                    = 8080
        path                    = "/health"
        interval_seconds        = 30
        timeout                 = 10
        failure_count_threshold = 3
      }
      # /health, not /ready: a revision becomes active only once a replica is ready, so a
      # replica standing by for the old revision's leases (or for the workspace role granted
      # after deployment) would hold the rollout forever (docs/deploy.md).
      readiness_probe {
        transport               = "HTTP"
        port                    = 8080
        path                    = "/health"
        interval_seconds        = 10
        timeout                 = 5
        failure_count_threshold = 3
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.mongodb_connection_string != null || (var.atlas_cluster_name != null && var.mongodb_userpass != null)
      error_message = "Set mongodb_connection_string, or atlas_project_id, atlas_cluster_name and mongodb_userpass."
    }
    precondition {
      condition     = var.create_mirrored_database ? var.fabric_workspace_id != null : var.fabric_landing_zone_url != null
      error_message = "Set fabric_landing_zone_url, or create_mirrored_database with fabric_workspace_id."
    }
  }

  depends_on = [azurerm_role_assignment.acr_pull, azurerm_role_assignment.key_vault_reader]
}
