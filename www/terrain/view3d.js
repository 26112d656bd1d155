// The 3D view: the heightmap as a three.js mesh (at most 256 × 256
// vertices), textured with the shaded relief, drawn on demand (when the
// camera moves or the map changes) rather than every frame.
import * as THREE from 'three';
import { OrbitControls } from 'three/addons/controls/OrbitControls.js';

/** Metres per pixel of the maps (the model's training data; its package renders them so). */
export const PIXEL_METRES = 0.1;
const MAX_SEGMENTS = 255;

export function createView(container) {
  const renderer = new THREE.WebGLRenderer({ antialias: true });
  renderer.setPixelRatio(window.devicePixelRatio);
  renderer.setSize(container.clientWidth, container.clientHeight);
  container.append(renderer.domElement);
  const scene = new THREE.Scene();
  scene.background = new THREE.Color(0x9fb8cc);
  const camera = new THREE.PerspectiveCamera(45, container.clientWidth / container.clientHeight, 0.01, 10000);
  scene.add(new THREE.HemisphereLight(0xffffff, 0x556644, 1.2));
  const sun = new THREE.DirectionalLight(0xffffff, 1.8);
  sun.position.set(-1, 1.5, -0.5);
  scene.add(sun);
  const controls = new OrbitControls(camera, renderer.domElement);
  const render = () => renderer.render(scene, camera);
  controls.addEventListener('change', render);
  let mesh = null;
  let exaggeration = 1;

  return {
    /** Shows one map: `heights` (metres, row-major h × w) textured with `relief` (a canvas). */
    show(heights, w, h, relief) {
      if (mesh) {
        scene.remove(mesh);
        mesh.geometry.dispose();
        mesh.material.map.dispose();
        mesh.material.dispose();
      }
      const sx = Math.min(w - 1, MAX_SEGMENTS) || 1;
      const sy = Math.min(h - 1, MAX_SEGMENTS) || 1;
      const geo = new THREE.PlaneGeometry(w * PIXEL_METRES, h * PIXEL_METRES, sx, sy);
      geo.rotateX(-Math.PI / 2); // the plane's +y row (top of the image) now points to -z
      const pos = geo.attributes.position;
      for (let j = 0; j <= sy; j++) {
        const y = Math.round((j * (h - 1)) / sy);
        for (let i = 0; i <= sx; i++) {
          const x = Math.round((i * (w - 1)) / sx);
          pos.setY(j * (sx + 1) + i, heights[y * w + x]);
        }
      }
      geo.computeVertexNormals();
      const map = new THREE.CanvasTexture(relief);
      map.colorSpace = THREE.SRGBColorSpace;
      mesh = new THREE.Mesh(geo, new THREE.MeshLambertMaterial({ map }));
      mesh.scale.y = exaggeration;
      scene.add(mesh);
      const span = Math.max(w, h) * PIXEL_METRES;
      camera.position.set(0, span * 0.85, span * 1.3);
      controls.target.set(0, 0, 0);
      controls.update();
      render();
    },
    /** Vertical exaggeration (1 = true scale). */
    setExaggeration(x) {
      exaggeration = x;
      if (mesh) { mesh.scale.y = x; render(); }
    },
  };
}
