"""Precision variants of an fp32 export: calibration sets (calib), fp16 / int8 / cpu-fp32 variants
(quantize) and the Winograd rewrite of the cpu-fp32 variant (winograd).
"""
