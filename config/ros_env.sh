# Source this to get the ROS 2 environment fusion_monitor is tested with (bash).
# - DDS stays on this machine (localhost-only discovery);
# - a private ROS_DOMAIN_ID unless one is set already (derived from user and checkout path);
# - RMW left to Fast DDS (the only RMW in the PyPI wheels: any other value makes rclpy exit);
# - the shipped Fast DDS large-message profile (shared memory with a 64 MiB segment).
_fm_config_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
if [ -z "${ROS_DOMAIN_ID:-}" ]; then
  ROS_DOMAIN_ID=$(( $(printf '%s:%s' "$(id -u)" "$_fm_config_dir" | cksum | cut -d' ' -f1) % 100 + 1 ))
  export ROS_DOMAIN_ID
fi
unset RMW_IMPLEMENTATION
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$_fm_config_dir/fastdds_large_messages.xml}"
unset _fm_config_dir
