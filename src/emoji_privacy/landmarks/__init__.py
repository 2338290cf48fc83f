"""68-point facial landmarks: ``geometry`` (pure numpy: .pts files, head roll, the region to cover),
``base`` (the LandmarkDetector interface), the backends ``facemesh`` and ``fan``, the ``refiner``
the facemesh backend applies, and ``align`` (backend registry and FER-style face alignment).
Import the submodule you need; nothing is re-exported here."""
