"""Launch the fusion_monitor node (and RViz with the shipped view).

    ros2 launch fusion_monitor fusion_monitor.launch.py use_sim_time:=true rviz:=false
"""

from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description():
    share = FindPackageShare("fusion_monitor")
    use_sim_time = ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)
    return LaunchDescription([
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([share, "config", "fusion_monitor.param.yaml"]),
            description="ROS parameter file of the node (every default: config/fusion_monitor.param.yaml)",
        ),
        DeclareLaunchArgument(
            "model",
            default_value="",
            description="model package folder (model.onnx + metadata); empty = model.package from params_file",
        ),
        DeclareLaunchArgument(
            "use_sim_time",
            default_value="false",
            description="follow /clock (true when replaying a bag with --clock)",
        ),
        DeclareLaunchArgument(
            "rviz",
            default_value="true",
            description="start RViz with launch/fusion_monitor.rviz (markers, BEV maps, LiDAR, a camera)",
        ),
        Node(
            package="fusion_monitor",
            executable="fusion_monitor_node",
            name="fusion_monitor",
            output="screen",
            arguments=[["--model=", LaunchConfiguration("model")]],
            parameters=[LaunchConfiguration("params_file"), {"use_sim_time": use_sim_time}],
        ),
        Node(
            package="rviz2",
            executable="rviz2",
            name="rviz2",
            arguments=["-d", PathJoinSubstitution([share, "launch", "fusion_monitor.rviz"])],
            parameters=[{"use_sim_time": use_sim_time}],
            # nuScenes names the compressed stream image_rect_compressed; RViz's image_transport
            # subscriber looks for <base>/compressed
            remappings=[("/CAM_FRONT/image_rect/compressed", "/CAM_FRONT/image_rect_compressed")],
            condition=IfCondition(LaunchConfiguration("rviz")),
        ),
    ])
