# Inputs. terraform.tfvars.example shows a complete set; docs/deploy.md maps the
# MongoDB_Fabric_Mirroring app's variables to these.

variable "subscription_id" {
  description = "The Azure subscription to deploy into."
  type        = string
}

variable "name" {
  description = "The container app's name, also the prefix of every other resource's name."
  type        = string
  default     = "mirror"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name: 3 to 32 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "location" {
  description = "The Azure region, e.g. eastus2."
  type        = string
}

variable "resource_group_name" {
  description = "The resource group to create and deploy into."
  type        = string
  default     = "mirror"
}

variable "tags" {
  description = "Tags for every Azure resource."
  type        = map(string)
  default     = {}
}

variable "container_image" {
  description = "The mirror image, e.g. myregistry.azurecr.io/mirror:0.1.0 (docs/deploy.md: az acr build)."
  type        = string
}

variable "container_registry" {
  description = "An Azure Container Registry to pull the image from with the managed identity (given AcrPull on it): its resource id and login server. Null for a public image."
  type = object({
    id           = string
    login_server = string
  })
  default = null
}

variable "cpu" {
  description = "CPU cores of the container (memory is twice that in GiB). Sizing: docs/deploy.md."
  type        = number
  default     = 1
  validation {
    condition     = contains([0.5, 1, 2], var.cpu)
    error_message = "cpu: 0.5, 1 or 2."
  }
}

variable "log_level" {
  description = "RUST_LOG: error, warn, info, debug, or a filter such as info,mirror_mongodb=debug."
  type        = string
  default     = "info"
}

variable "log_retention_days" {
  description = "Days the Log Analytics workspace keeps mirror's logs."
  type        = number
  default     = 30
}

# --- MongoDB -------------------------------------------------------------------------------------

variable "mongodb_connection_string" {
  description = "The MongoDB URI. Null to build it from the Atlas cluster (atlas_cluster_name and mongodb_userpass), through the private endpoint when atlas_private_link is enabled."
  type        = string
  default     = null
  sensitive   = true
}

variable "mongodb_userpass" {
  description = "user:password for the URI built from the Atlas cluster (percent-encode special characters)."
  type        = string
  default     = null
  sensitive   = true
}

variable "mongodb_database" {
  description = "The database to mirror (* for every one)."
  type        = string
}

variable "mongodb_collection" {
  description = "The collection to mirror: a name, a pattern such as orders_*, or all."
  type        = string
  default     = "all"
}

# --- MongoDB Atlas and the private endpoint --------------------------------------------------

variable "atlas_public_key" {
  description = "MongoDB Atlas API public key (or MONGODB_ATLAS_PUBLIC_KEY)."
  type        = string
  default     = null
}

variable "atlas_private_key" {
  description = "MongoDB Atlas API private key (or MONGODB_ATLAS_PRIVATE_KEY)."
  type        = string
  default     = null
  sensitive   = true
}

variable "atlas_project_id" {
  description = "The Atlas project (group) id of the cluster."
  type        = string
  default     = null
}

variable "atlas_cluster_name" {
  description = "The Atlas cluster, to build the URI from its connection strings. Null when mongodb_connection_string is given."
  type        = string
  default     = null
}

variable "atlas_private_link" {
  description = "A private endpoint between a new Azure VNet (where the Container Apps environment runs) and the Atlas project, so MongoDB traffic never crosses the internet. atlas_region is the Azure region in Atlas' naming (e.g. US_EAST_2); the address space must not overlap networks peered with it."
  type = object({
    enabled                 = bool
    atlas_region            = optional(string)
    address_space           = optional(string, "10.80.0.0/16")
    apps_subnet_prefix      = optional(string, "10.80.0.0/23")
    endpoints_subnet_prefix = optional(string, "10.80.2.0/24")
  })
  default = {
    enabled = false
  }
}

# --- Key Vault -----------------------------------------------------------------------------------

variable "key_vault" {
  description = "A Key Vault that holds the MongoDB URI; the container app reads it with the managed identity. The name must be globally unique."
  type = object({
    enabled = bool
    name    = optional(string)
  })
  default = {
    enabled = false
  }
}

# --- Fabric --------------------------------------------------------------------------------------

variable "fabric_workspace_id" {
  description = "The Fabric workspace: the managed identity gets fabric_workspace_role in it, and the mirrored database is created there. Null to do both by hand (docs/deploy.md)."
  type        = string
  default     = null
}

variable "fabric_workspace_role" {
  description = "The identity's workspace role: Contributor is what mirror needs to write the landing zone."
  type        = string
  default     = "Contributor"
}

variable "create_mirrored_database" {
  description = "Create an open mirroring database in fabric_workspace_id and write into its landing zone (then start it: mirror fabric start)."
  type        = bool
  default     = false
}

variable "mirrored_database_name" {
  description = "The mirrored database's display name, when created."
  type        = string
  default     = "MongoDB"
}

variable "fabric_landing_zone_url" {
  description = "The landing zone of an existing mirrored database: https://onelake.dfs.fabric.microsoft.com/<workspace id>/<item id>/Files/LandingZone. Ignored when create_mirrored_database is true."
  type        = string
  default     = null
}
