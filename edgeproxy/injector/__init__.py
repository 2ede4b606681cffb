"""Automatic sidecar injection: a mutating admission webhook adds edgeproxy to the pods that
ask for it (docs/deployment.md, "Sidecar injection").

  settings.py   what is injected, from the settings file and each pod's annotations
  patch.py      pod in, JSONPatch out (pure)
  apply.py      that JSONPatch applied, for --dry-run
  review.py     AdmissionReview in and out (pure)
  webhook.py    the HTTPS server
  tls.py        its certificate, reloaded when cert-manager renews it
  manifests.py  `edgeproxy inject --dry-run`: pods and pod templates in YAML files
  command.py    the `edgeproxy inject` subcommand
"""
