"""3D Slicer module: draw ROI boxes on a mammogram (or let "Find masses" place them), get one mass
segment per ROI (Connected-UNets).

The Widget only wires the panel. The Logic reads MRML nodes into numpy and writes segments back
(``SlicerConnectedUNetsLib.mrml_logic``, tested without the Slicer GUI against ``slicer-core``)
and calls the bundle's ``Segmenter`` (``connected_unets.inference``) through a cached model
(``SlicerConnectedUNetsLib.engine``): no pre- or post-processing is re-implemented here. What
Slicer's Python lacks is installed on first use by ``SlicerConnectedUNetsLib.dependencies``.
"""

import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import qt
import slicer
import vtk
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from SlicerConnectedUNetsLib import dependencies, engine
from SlicerConnectedUNetsLib.engine import BackgroundJob, Cancelled, InputError
from SlicerConnectedUNetsLib.mrml_logic import MASS_TERMINOLOGY, MammogramSegmentationLogic, slice_index_at

MODULE_DIR = Path(__file__).resolve().parent


#
# Module
#


class SlicerConnectedUNets(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Connected-UNets Mass Segmentation"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["Connected-UNets for 3D Slicer and MONAI contributors"]
        self.parent.helpText = (
            "Draw one ROI box around each breast mass on a mammogram (or press Find masses: the detector places "
            "one ROI per mass it finds, its score in the name) and press Segment: every ROI becomes "
            "one segment, computed by a Connected-UNets network (Baccouche et al. 2021) on the GPU when "
            "there is one. Research use only, not for clinical use. See the module README for install, "
            "GPU/CPU choice and offline use."
        )
        self.parent.acknowledgementText = (
            "Networks after Baccouche A, Garcia-Zapirain B, Castillo Olea C, Elmaghraby AS. Connected-UNets: "
            "a deep learning architecture for breast mass segmentation. npj Breast Cancer 7, 151 (2021). "
            "Built on PyTorch, MONAI and the PyTorch extension of 3D Slicer."
        )


#
# Widget
#


class SlicerConnectedUNetsWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    POLL_MS = 100

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._updatingGUIFromParameterNode = False
        self._job = None
        self._request = None
        self._lastStatus = None
        self._pendingRoiIDs = []
        self._observedRoiIDs = set()
        self._timer = None
        self._finish = None  # what onPollJob hands the finished job to: finishSegmentation or finishDetection

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SlicerConnectedUNets.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SlicerConnectedUNetsLogic()

        self.updateModelChoices()
        for name, label in engine.DEVICES:
            self.ui.deviceComboBox.addItem(label, name)
        self.ui.progressBar.hide()
        if self.logic.bundleError:
            self.status(self.logic.bundleError)

        self._timer = qt.QTimer()
        self._timer.setInterval(self.POLL_MS)
        self._timer.connect("timeout()", self.onPollJob)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAddedEvent, self.onNodeAdded)

        self.ui.inputVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateParameterNodeFromGUI)
        self.ui.outputSegmentationSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateParameterNodeFromGUI)
        self.ui.roiSelector.connect("checkedNodesChanged()", self.updateButtonStates)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.updateParameterNodeFromGUI)
        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self.updateParameterNodeFromGUI)
        self.ui.thresholdSpinBox.connect("valueChanged(double)", self.updateParameterNodeFromGUI)
        self.ui.weightsPathLineEdit.connect("currentPathChanged(QString)", self.updateParameterNodeFromGUI)
        self.ui.autoUpdateCheckBox.connect("toggled(bool)", self.updateParameterNodeFromGUI)
        self.ui.placeRoiButton.connect("clicked(bool)", self.onPlaceRoi)
        self.ui.findMassesButton.connect("clicked(bool)", self.onFindMasses)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)

        for roi in slicer.util.getNodesByClass("vtkMRMLMarkupsROINode"):
            self.watchRoi(roi, check=True)
        self.initializeParameterNode()

    def cleanup(self):
        if self._job is not None:
            self._job.cancel()
        if self._timer is not None:
            self._timer.stop()
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        if self._parameterNode is not None:
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)

    def onSceneStartClose(self, caller, event):
        self.onCancelButton()
        self._observedRoiIDs.clear()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    # -- parameter node --------------------------------------------------------------------------

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.GetNodeReference("InputVolume"):
            volume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if volume is not None and not volume.IsA("vtkMRMLLabelMapVolumeNode"):
                self._parameterNode.SetNodeReferenceID("InputVolume", volume.GetID())

    def setParameterNode(self, parameterNode):
        if parameterNode is not None:
            self.logic.setDefaultParameters(parameterNode)
        if self._parameterNode is not None:
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
        self._parameterNode = parameterNode
        if self._parameterNode is not None:
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
        self.updateGUIFromParameterNode()

    def updateGUIFromParameterNode(self, caller=None, event=None):
        if self._parameterNode is None or self._updatingGUIFromParameterNode:
            return
        self._updatingGUIFromParameterNode = True
        try:
            node = self._parameterNode
            self.ui.inputVolumeSelector.setCurrentNode(node.GetNodeReference("InputVolume"))
            self.ui.outputSegmentationSelector.setCurrentNode(node.GetNodeReference("OutputSegmentation"))
            self.ui.weightsPathLineEdit.currentPath = node.GetParameter("Weights")
            self.updateModelChoices()
            self.ui.modelComboBox.setCurrentIndex(max(self.ui.modelComboBox.findData(node.GetParameter("Model")), 0))
            self.ui.deviceComboBox.setCurrentIndex(max(self.ui.deviceComboBox.findData(node.GetParameter("Device")), 0))
            self.ui.thresholdSpinBox.value = float(node.GetParameter("Threshold") or 0.0)
            self.ui.autoUpdateCheckBox.checked = node.GetParameter("AutoUpdate") == "true"
        finally:
            self._updatingGUIFromParameterNode = False
        if (self.ui.modelComboBox.currentData or "") != node.GetParameter("Model"):
            self.updateParameterNodeFromGUI()  # the stored network is not offered (any more): store the one shown
        self.updateButtonStates()

    def updateModelChoices(self):
        """Offer the networks that can run: those whose weights ship, all once a weights file is chosen."""
        combo = self.ui.modelComboBox
        current = combo.currentData
        wasBlocked = combo.blockSignals(True)
        try:
            combo.clear()
            for name, label in self.logic.offeredNetworks(self.ui.weightsPathLineEdit.currentPath):
                combo.addItem(label, name)
            combo.setCurrentIndex(max(combo.findData(current), 0))
        finally:
            combo.blockSignals(wasBlocked)

    def updateParameterNodeFromGUI(self, caller=None, event=None):
        if self._parameterNode is None or self._updatingGUIFromParameterNode:
            return
        node = self._parameterNode
        wasModified = node.StartModify()
        node.SetNodeReferenceID("InputVolume", self.ui.inputVolumeSelector.currentNodeID)
        node.SetNodeReferenceID("OutputSegmentation", self.ui.outputSegmentationSelector.currentNodeID)
        node.SetParameter("Model", self.ui.modelComboBox.currentData or "")
        node.SetParameter("Device", self.ui.deviceComboBox.currentData or "auto")
        node.SetParameter("Threshold", str(self.ui.thresholdSpinBox.value))
        node.SetParameter("Weights", self.ui.weightsPathLineEdit.currentPath)
        node.SetParameter("AutoUpdate", "true" if self.ui.autoUpdateCheckBox.checked else "false")
        node.EndModify(wasModified)

    def updateButtonStates(self, *args):
        """Segment stays clickable when inputs are missing: the panel then says what is missing."""
        busy = self._job is not None
        volume = self.ui.inputVolumeSelector.currentNode()
        rois = self.ui.roiSelector.checkedNodes()
        self.ui.applyButton.enabled = not busy
        self.ui.findMassesButton.enabled = not busy
        if busy:
            self.ui.applyButton.toolTip = "Segmentation is running"
        elif volume is None:
            self.ui.applyButton.toolTip = "Select the mammogram first"
        elif not rois:
            self.ui.applyButton.toolTip = "Draw an ROI around a mass (Draw ROI), or tick one in the ROI list"
        else:
            self.ui.applyButton.toolTip = f"Segment {len(rois)} ROI(s) in one batch"
        self.ui.cancelButton.enabled = busy
        self.ui.progressBar.visible = busy
        self.ui.outputSegmentationSelector.enabled = not busy
        self.ui.inputVolumeSelector.enabled = not busy

    def modelSettings(self):
        threshold = self.ui.thresholdSpinBox.value
        return {
            "model": self.ui.modelComboBox.currentData or None,
            "device": self.ui.deviceComboBox.currentData or "auto",
            "threshold": threshold if threshold > self.ui.thresholdSpinBox.minimum else None,
            "weights": self.ui.weightsPathLineEdit.currentPath or None,
        }

    # -- ROIs ------------------------------------------------------------------------------------

    @vtk.calldata_type(vtk.VTK_OBJECT)
    def onNodeAdded(self, caller, event, node):
        if node is not None and node.IsA("vtkMRMLMarkupsROINode"):
            # the combo box adds the node after this observer has run: tick it on the next turn
            qt.QTimer.singleShot(0, lambda nodeID=node.GetID(): self.watchRoi(slicer.mrmlScene.GetNodeByID(nodeID), check=True))

    def watchRoi(self, roi, check=False):
        if roi is None:
            return
        if check:
            self.ui.roiSelector.setCheckState(roi, qt.Qt.Checked)
        if roi.GetID() in self._observedRoiIDs:
            return
        self._observedRoiIDs.add(roi.GetID())
        self.addObserver(roi, slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self.onRoiEdited)
        self.addObserver(roi, slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent, self.onRoiEdited)

    def onRoiEdited(self, roi, event):
        if not self.ui.autoUpdateCheckBox.checked or roi is None or roi.GetScene() is None:
            return
        if roi.GetNumberOfControlPoints() < 1 or roi.GetNthControlPointPositionStatus(0) != roi.PositionDefined:
            return
        if sum(1 for length in roi.GetSize() if length > 0) < 2:  # first click of a two-click placement
            return
        if roi not in self.ui.roiSelector.checkedNodes():
            return
        if self._job is not None:  # one run at a time: this ROI goes next
            if roi.GetID() not in self._pendingRoiIDs:
                self._pendingRoiIDs.append(roi.GetID())
            return
        self.startSegmentation([roi], automatic=True)

    def onPlaceRoi(self):
        volume = self.ui.inputVolumeSelector.currentNode()
        name = slicer.mrmlScene.GenerateUniqueName(f"{volume.GetName()} ROI" if volume else "ROI")
        roi = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsROINode", name)
        roi.CreateDefaultDisplayNodes()
        displayNode = roi.GetDisplayNode()
        displayNode.SetFillVisibility(False)
        selectionNode = slicer.app.applicationLogic().GetSelectionNode()
        selectionNode.SetReferenceActivePlaceNodeClassName("vtkMRMLMarkupsROINode")
        selectionNode.SetActivePlaceNodeID(roi.GetID())
        interactionNode = slicer.app.applicationLogic().GetInteractionNode()
        interactionNode.SetCurrentInteractionMode(interactionNode.Place)
        self.status(f"Drawing '{name}': click two opposite corners around the mass in a slice view.", clear=True)

    # -- running ---------------------------------------------------------------------------------

    def status(self, text, clear=False):
        if clear:
            self.ui.statusLabel.plainText = ""
        self.ui.statusLabel.appendPlainText(text)
        logging.info(text)

    def currentSliceIndex(self, volume):
        """For a volume with several slices: the one shown in the Red view."""
        imageData = volume.GetImageData() if volume is not None else None
        if imageData is None or imageData.GetDimensions()[2] <= 1:
            return None
        sliceNode = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceNode()
        sliceToRAS = sliceNode.GetSliceToRAS()
        return slice_index_at(volume, [sliceToRAS.GetElement(i, 3) for i in range(3)])

    def onApplyButton(self):
        self.startSegmentation(self.ui.roiSelector.checkedNodes(), automatic=False)

    def startSegmentation(self, rois, automatic=False):
        if self._job is not None:
            return
        self.status(f"Segmenting ROI '{rois[0].GetName()}'..." if automatic else "Starting...", clear=not automatic)
        try:
            self.setupDependencies()
            volume = self.ui.inputVolumeSelector.currentNode()
            sliceIndex = self.currentSliceIndex(volume)
            request = self.logic.prepare(volume, rois, sliceIndex)
        except InputError as err:
            self.status(str(err))
            return
        except Exception as err:  # noqa: BLE001 - shown in the panel, traceback in the log
            logging.exception("Connected-UNets: could not start")
            self.status(f"Could not start: {engine.one_line(err)}")
            return
        for note in request.notes:
            self.status(note + (" (the one shown in the Red view)" if "segmenting slice" in note else ""))
        settings = self.modelSettings()
        logic = self.logic
        self._request = request
        self._finish = self.finishSegmentation
        self._job = BackgroundJob(lambda job: logic.infer(request, job=job, **settings)).start()
        self._lastStatus = None
        self._timer.start()
        self.updateButtonStates()

    def setupDependencies(self):
        """First use: install what Slicer's Python lacks, each step in the panel with the busy bar."""

        def progress(text):
            self.status(text)
            self.ui.applyButton.enabled = False
            self.ui.progressBar.show()
            slicer.app.processEvents()  # pip blocks the event loop: show the step before it starts

        try:
            self.logic.setupPythonRequirements(askConfirmation=True, progress=progress)
        finally:
            self.updateButtonStates()

    def onPollJob(self):
        job = self._job
        if job is None:
            self._timer.stop()
            return
        if job.status != self._lastStatus:
            self._lastStatus = job.status
            self.status(job.status)
        slicer.util.showStatusMessage(f"Connected-UNets: {job.status} ({job.seconds:.0f} s)")
        if not job.done:
            return
        self._timer.stop()
        self._job, request = None, self._request
        finish, self._request, self._finish = self._finish or self.finishSegmentation, None, None
        try:
            finish(job, request)
        finally:
            self.updateButtonStates()
            slicer.util.showStatusMessage("")
        if self._pendingRoiIDs:
            rois = [slicer.mrmlScene.GetNodeByID(i) for i in self._pendingRoiIDs]
            self._pendingRoiIDs = []
            rois = [roi for roi in rois if roi is not None]
            if rois:
                self.startSegmentation(rois, automatic=True)

    def reportFailedJob(self, job, what: str) -> bool:
        """Say in the panel why a background job brought no result (cancelled, bad input, error);
        False when it has one to apply."""
        if job.cancelled or isinstance(job.error, Cancelled):
            self.status("Cancelled: nothing was changed in the scene.")
            return True
        if job.error is None:
            return False
        if isinstance(job.error, InputError):
            self.status(str(job.error))
        else:
            logging.error(f"Connected-UNets {what} failed", exc_info=job.error)
            self.status(f"Failed: {engine.one_line(job.error)} (details in the Python console / log)")
        return True

    def finishSegmentation(self, job, request):
        if self.reportFailedJob(job, "segmentation"):
            return
        try:
            result = self.logic.apply(request, job.result, self.ui.outputSegmentationSelector.currentNode())
        except InputError as err:
            self.status(str(err))
            return
        segmentation = result.segmentation_node
        if self.ui.outputSegmentationSelector.currentNode() is None:
            self.ui.outputSegmentationSelector.setCurrentNode(segmentation)
        segmentation.GetDisplayNode().SetVisibility(True)
        for note in result.notes:
            if note not in request.notes:
                self.status(note)
        self.status(
            f"{len(result.segment_ids)} ROI(s) -> '{segmentation.GetName()}' in {job.seconds:.1f} s "
            f"({self.logic.models.describe()})."
        )
        self.updateDeviceInfo()

    def onFindMasses(self):
        """Search the whole mammogram in the background; the ROIs are added when it is done."""
        if self._job is not None:
            return
        self.status("Finding masses...", clear=True)
        try:
            self.setupDependencies()
            volume = self.ui.inputVolumeSelector.currentNode()
            image = self.logic.prepare_image(volume, self.currentSliceIndex(volume))
        except InputError as err:
            self.status(str(err))
            return
        except Exception as err:  # noqa: BLE001 - shown in the panel, traceback in the log
            logging.exception("Connected-UNets: could not start the search")
            self.status(f"Could not start: {engine.one_line(err)}")
            return
        for note in image.notes:
            self.status(note)
        settings, logic = self.modelSettings(), self.logic
        self._request, self._finish = (volume, image), self.finishDetection
        self._job = BackgroundJob(lambda job: logic.detect(image, job=job, **settings)).start()
        self._lastStatus = None
        self._timer.start()
        self.updateButtonStates()

    def finishDetection(self, job, request):
        if self.reportFailedJob(job, "search"):
            return
        volume, image = request
        try:
            rois = self.logic.add_detection_rois(volume, image, job.result)
        except InputError as err:
            self.status(str(err))
            return
        if not rois:
            self.status(f"No mass found in '{image.name}' ({job.seconds:.1f} s). Draw ROIs by hand (Draw ROI) where you see one.")
            return
        self.status(
            f"{len(rois)} mass(es) found in {job.seconds:.1f} s: {', '.join(roi.GetName() for roi in rois)}. "
            "Move, delete or add ROIs, then press Segment."
        )

    def onCancelButton(self):
        job = self._job
        if job is None:
            return
        job.cancel()
        self._timer.stop()
        self._job, self._request, self._pendingRoiIDs, self._finish = None, None, [], None
        self.status("Cancelled: nothing was changed in the scene (a running forward pass finishes in the background).")
        self.updateButtonStates()

    def updateDeviceInfo(self):
        try:
            _, text = engine.describe_devices()
        except Exception as err:  # noqa: BLE001
            text = f"device detection failed: {engine.one_line(err)}"
        self.ui.deviceInfoLabel.text = text


#
# Logic
#


class SlicerConnectedUNetsLogic(ScriptedLoadableModuleLogic, MammogramSegmentationLogic):
    """Slicer side of the Logic: parameters, first-use dependency install, bundle location.
    Reading nodes, running the model and writing segments is ``MammogramSegmentationLogic``."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self.bundleError = None
        try:
            bundle = engine.find_bundle(MODULE_DIR)
        except InputError as err:
            bundle, self.bundleError = None, str(err)
        MammogramSegmentationLogic.__init__(self, bundle_dir=bundle)
        self._requirementsReady = False

    def setDefaultParameters(self, parameterNode):
        defaults = {"Device": "auto", "Threshold": "0.0", "Weights": "", "AutoUpdate": "false"}  # Model: the widget's first offer
        for name, value in defaults.items():
            if not parameterNode.GetParameter(name):
                parameterNode.SetParameter(name, value)

    def segmenter(self, *args, **kwargs):
        if self.bundleError:
            raise InputError(self.bundleError)
        return MammogramSegmentationLogic.segmenter(self, *args, **kwargs)

    def offeredNetworks(self, weights=""):
        """(name, display name) of the networks the panel offers; none without a bundle."""
        return [] if self.bundleError else engine.offered_networks(self.models.bundle_dir, weights or None)

    def setupPythonRequirements(self, askConfirmation=True, progress=logging.info):
        """torch through the PyTorch extension, the rest with pip, after asking (``dependencies``);
        InputError with a clear message when something is missing and cannot be installed."""
        if self._requirementsReady:
            return
        if self.bundleError:
            raise InputError(self.bundleError)
        ask = askConfirmation and not slicer.app.commandOptions().testingEnabled
        dependencies.ensure_installed(confirm=slicer.util.confirmOkCancelDisplay if ask else None, progress=progress)
        self._requirementsReady = True


#
# Test (runs inside Slicer: Developer Tools > Self Tests, or ctest after building the extension)
#


class SlicerConnectedUNetsTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SegmentSampleMammogram()

    def test_SegmentSampleMammogram(self):
        """Load a shipped sample mammogram, put ROIs on its lesion boxes, segment, and check that each
        segment is exactly Segmenter.segment's mask for that box on the same pixel array, tagged "Mass"."""
        self.delayDisplay("Setting up dependencies")
        logic = SlicerConnectedUNetsLogic()
        logic.setupPythonRequirements(askConfirmation=False)
        from connected_unets.bundle import DEFAULT_NETWORK, shipped_networks

        bundle = logic.models.bundle_dir
        samples = json.loads((bundle / "sample_data" / "samples.json").read_text())
        item = next(s for s in samples if len(s["boxes"]) == 2)
        volume = slicer.util.loadVolume(str(bundle / "sample_data" / item["image"]), {"singleFile": True})

        ijkToRAS = vtk.vtkMatrix4x4()
        volume.GetIJKToRASMatrix(ijkToRAS)
        rois = []
        for index, (x0, y0, x1, y1) in enumerate(item["boxes"]):
            corners = [ijkToRAS.MultiplyPoint([x - 0.5, y - 0.5, 0.0, 1.0])[:3] for x, y in ((x0, y0), (x1, y1))]
            roi = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsROINode", f"mass {index + 1}")
            roi.SetCenter([(a + b) / 2 for a, b in zip(*corners)])
            roi.SetSize([abs(a - b) for a, b in zip(*corners)])
            rois.append(roi)

        with tempfile.TemporaryDirectory() as tmp:
            weights = None
            if DEFAULT_NETWORK not in shipped_networks(bundle):  # no trained weights yet: test the path
                import torch
                from connected_unets.networks import get_network

                torch.manual_seed(0)
                weights = os.path.join(tmp, "random.pt")
                torch.save(get_network(DEFAULT_NETWORK, in_channels=3).state_dict(), weights)
            self.delayDisplay("Segmenting")
            result = logic.process(volume, rois, device="auto", weights=weights)
            segmenter = logic.segmenter(device="auto", weights=weights)

        segmentation = result.segmentation_node
        self.assertEqual(segmentation.GetSegmentation().GetNumberOfSegments(), 2)
        image = slicer.util.arrayFromVolume(volume)[0]
        if image.ndim == 3:  # read as RGB with equal channels
            image = image[..., 0]
        for segmentID, box in zip(result.segment_ids, item["boxes"]):
            expected = segmenter.segment(image, [box], source="self-test")
            got = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segmentID, volume)[0]
            self.assertTrue(np.array_equal(got > 0, expected > 0), f"segment {segmentID} differs from Segmenter.segment")
            self.assertEqual(segmentation.GetSegmentation().GetSegment(segmentID).GetTerminology(), MASS_TERMINOLOGY)
        self.delayDisplay("Test passed")
