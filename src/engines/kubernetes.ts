/**
 * Kubernetes identity of a container, from what the CRI runtimes record: kubelet's labels
 * (`io.kubernetes.pod.name`, `.pod.namespace`, `.pod.uid`, `.container.name`), containerd's CRI
 * annotations (`io.kubernetes.cri.*`) and CRI-O's annotations (`io.kubernetes.cri-o.*`, whose
 * `Labels` annotation holds kubelet's labels as JSON).
 */
import { parseJson, stringMap } from './json.js';

export interface PodIdentity {
  pod?: string;
  podNamespace?: string;
  podUid?: string;
  containerName?: string;
  sandbox: boolean;
  image?: string;
}

const first = (...vals: (string | undefined)[]): string | undefined => vals.find((v) => v !== undefined && v !== '');

/** Pod fields from labels and annotations; `sandbox` when a CRI runtime marks it as the pod's sandbox. */
export function podIdentity(labels: Record<string, string>, annotations: Record<string, string>): PodIdentity {
  const crioLabels =
    annotations['io.kubernetes.cri-o.Labels'] !== undefined
      ? stringMap(parseJson(annotations['io.kubernetes.cri-o.Labels']!))
      : {};
  const all = (k: string): string | undefined => first(labels[k], annotations[k], crioLabels[k]);
  const containerType = first(
    annotations['io.kubernetes.cri.container-type'],
    annotations['io.kubernetes.cri-o.ContainerType'],
  );
  const sandbox = containerType === 'sandbox' || labels['io.cri-containerd.kind'] === 'sandbox';
  const id: PodIdentity = {
    // CRI-O's KubeName is the pod's name only on the sandbox (on a container it is the container's).
    pod: first(
      all('io.kubernetes.pod.name'),
      annotations['io.kubernetes.cri.sandbox-name'],
      sandbox ? annotations['io.kubernetes.cri-o.KubeName'] : undefined,
    ),
    podNamespace: first(
      all('io.kubernetes.pod.namespace'),
      annotations['io.kubernetes.cri.sandbox-namespace'],
      annotations['io.kubernetes.cri-o.Namespace'],
    ),
    podUid: first(all('io.kubernetes.pod.uid'), annotations['io.kubernetes.cri.sandbox-uid']),
    containerName: sandbox
      ? undefined
      : first(
          all('io.kubernetes.container.name'),
          annotations['io.kubernetes.cri.container-name'],
          annotations['io.kubernetes.cri-o.ContainerName'],
        ),
    sandbox,
    image: first(annotations['io.kubernetes.cri.image-name'], annotations['io.kubernetes.cri-o.ImageName']),
  };
  return id;
}

/** Drops undefined fields so a ContainerInfo carries only what is known. */
export function definedPodFields(
  p: PodIdentity,
): Partial<Pick<PodIdentity, 'pod' | 'podNamespace' | 'podUid' | 'containerName'>> {
  const out: Partial<Pick<PodIdentity, 'pod' | 'podNamespace' | 'podUid' | 'containerName'>> = {};
  if (p.pod !== undefined) out.pod = p.pod;
  if (p.podNamespace !== undefined) out.podNamespace = p.podNamespace;
  if (p.podUid !== undefined) out.podUid = p.podUid;
  if (p.containerName !== undefined) out.containerName = p.containerName;
  return out;
}
