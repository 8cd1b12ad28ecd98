# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)


class ModuleDocFragment:
    # Kubernetes API connection options (see module_utils/calico/calico_resource.py kube_argument_spec).
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path of the kubeconfig file on the host that runs the module.
      - When omitted, C(KUBECONFIG) or C(~/.kube/config) is used; inside a pod without either, the pod's
        service account (in-cluster configuration).
    type: path
  context:
    description:
      - Context of O(kubeconfig) to use; the current context when omitted.
    type: str
  validate_certs:
    description:
      - Verify the apiserver's certificate against the CA of the kubeconfig.
      - Turn off only for a throwaway cluster; the client certificate or token is sent either way.
    type: bool
    default: true
requirements:
  - kubernetes (the Python client) >= 24.2 on the host that runs the module
"""
