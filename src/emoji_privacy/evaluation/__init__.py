"""Evaluation: how well the anonymizer hides faces, how fast it runs, and how good its models are, measured
on bags, generated scenes and annotated data sets. Sits above the pipeline and ``ros`` (it reads bags
through ``ros.bags`` and ``ros.messages``); nothing below imports it.

Modules:
- ``records``: what an evaluation records per frame (``FrameRecord``, ``FaceObservation``) and the statistics
  drawn from it (``Evaluation``, tracks, rates); plain data, no ROS;
- ``leaks``: the privacy leak meter (``LeakMeter``: an independent detector looks for faces still visible in
  the anonymized frame);
- ``report``: the report folder of an evaluation (report.md and .html, CSVs, plots, contact sheet, MP4);
- ``bag``: evaluate the anonymizer on a bag, offline or from the listener's recorded output (``evaluate``);
- ``video_to_bag``: make a test bag from a video, an image folder or the demo scene, with perturbations;
- ``synthetic``: generated scenes of pasted faces with known boxes (small faces, low light);
- ``crowd``: crowd clips from those faces (occlusion, profiles, close-ups, camera motion, three lightings) with
  per-frame ground truth;
- ``landmarks``: landmark accuracy (NME, failure rate, CED) on 300-W style folders;
- ``emotion``: emotion models compared side by side on a FER2013 split;
- ``cli``: the command lines of the four tools below.

Commands (``--help`` lists every option; docs/evaluation.md, docs/landmarks.md, docs/training.md):
- ``rosrun emoji_privacy video_to_bag SOURCE OUT.bag`` (``python -m emoji_privacy.evaluation video_to_bag``);
- ``rosrun emoji_privacy evaluate_bag BAG`` (``python -m emoji_privacy.evaluation bag``);
- ``rosrun emoji_privacy evaluate_emotion MODEL...`` (``python -m emoji_privacy.evaluation emotion``);
- ``rosrun emoji_privacy evaluate_landmarks --data DIR...`` (``python -m emoji_privacy.evaluation landmarks``);
- ``python -m emoji_privacy.evaluation crowd -o DIR [--size 640x360 ...] [--faces 10 ...] [--lighting dark ...]``.
"""
