"""IKE tasks: elementary operations inside exchanges (strongSwan's task_t).

Each task adds payloads to a request or response and consumes the peer's; the task manager
runs the tasks of one exchange together (IKE_AUTH carries IkeAuth and ChildCreate).
"""
