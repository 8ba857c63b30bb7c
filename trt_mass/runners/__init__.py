"""Backends behind one Runner interface (base), chosen in one place (select); each backend's module
(ort, trt, torch_ref) is imported only when it is used, and importing this package imports none of them."""
