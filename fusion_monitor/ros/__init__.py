"""The only package that imports rclpy or *_msgs: node, parameters, message conversions."""
