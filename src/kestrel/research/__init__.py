"""Research: datasets with leak-free splitting, models, calibration, metrics, HPO, explanations, the ONNX
model registry and serving. Heavy dependencies (scikit-learn, LightGBM, Optuna, ONNX, SHAP) come from the
`research` extra and are imported where used."""
