//! The data directory from the page: listing it, uploading a file picked in the browser
//! chunk by chunk (each chunk says its offset, and waits for the reply to the one before),
//! and downloading with the session token in a header, never in the URL.

use shared::{Command, ErrorInfo, ErrorKind, Outcome, ReplyData};
use wasm_bindgen::JsCast;

use super::use_bridge::Bridge;
use crate::state::Action;

/// Bytes per upload chunk: the bridge's limit (and within one WebSocket frame in base64).
const UPLOAD_CHUNK: usize = shared::MAX_UPLOAD_CHUNK;

impl Bridge {
    /// Lists the data directory into the state.
    pub async fn refresh_files(&self) {
        if let Outcome::Ok(ReplyData::Files { files }) = self.request(Command::ListFiles).await {
            self.dispatcher().dispatch(Action::Files(files));
        }
    }

    fn upload_state(&self, file: &str, upload: crate::state::Upload) {
        self.dispatcher().dispatch(Action::Upload {
            file: file.to_string(),
            upload,
        });
    }

    /// Streams a file picked in the browser into the data directory, one chunk at a time (the
    /// whole file is never in memory), reporting progress into the state.
    pub async fn upload(&self, file: web_sys::File) {
        let name = file.name();
        let size = file.size() as u64;
        let mut progress = crate::state::Upload {
            bytes: 0,
            size,
            sha256: None,
            failed: false,
        };
        self.upload_state(&name, progress.clone());
        let fail = |error: ErrorInfo, mut progress: crate::state::Upload| {
            progress.failed = true;
            self.upload_state(&name, progress);
            self.dispatcher().dispatch(Action::Failed {
                title: format!("Upload of {name}"),
                error,
            });
        };
        let id = match self
            .request(Command::UploadStart {
                file: name.clone(),
                size,
            })
            .await
        {
            Outcome::Ok(ReplyData::Upload { upload }) => upload,
            Outcome::Error(error) => return fail(error, progress),
            Outcome::Ok(_) => return,
        };
        let mut offset = 0u64;
        while offset < size {
            let end = (offset + UPLOAD_CHUNK as u64).min(size);
            let Ok(slice) = file.slice_with_f64_and_f64(offset as f64, end as f64) else {
                return fail(
                    ErrorInfo::new(ErrorKind::Other, "The browser could not read the file."),
                    progress,
                );
            };
            let Ok(buffer) = wasm_bindgen_futures::JsFuture::from(slice.array_buffer()).await
            else {
                return fail(
                    ErrorInfo::new(ErrorKind::Other, "The browser could not read the file."),
                    progress,
                );
            };
            let bytes = js_sys::Uint8Array::new(&buffer).to_vec();
            let Some(chunk) = crate::token::base64(&bytes) else {
                return fail(
                    ErrorInfo::new(ErrorKind::Other, "The browser could not encode the file."),
                    progress,
                );
            };
            match self
                .request(Command::UploadChunk {
                    upload: id,
                    offset: Some(offset),
                    base64: chunk,
                })
                .await
            {
                Outcome::Ok(_) => {}
                Outcome::Error(error) => return fail(error, progress),
            }
            offset = end;
            progress.bytes = offset;
            self.upload_state(&name, progress.clone());
        }
        match self.request(Command::UploadFinish { upload: id }).await {
            Outcome::Ok(ReplyData::Uploaded { sha256, .. }) => {
                progress.sha256 = sha256;
                self.upload_state(&name, progress);
                self.refresh_files().await;
            }
            Outcome::Error(error) => fail(error, progress),
            Outcome::Ok(_) => {}
        }
    }

    /// Downloads a data-directory file: the session token goes in a header, never the URL.
    pub async fn download(&self, name: &str) {
        if let Err(error) = self.try_download(name).await {
            self.dispatcher().dispatch(Action::Failed {
                title: format!("Download of {name}"),
                error: ErrorInfo::new(ErrorKind::Other, error),
            });
        }
    }

    async fn try_download(&self, name: &str) -> Result<(), String> {
        let window = web_sys::window().ok_or("no window")?;
        let headers = web_sys::Headers::new().map_err(|_| "no headers")?;
        let token = self.token();
        headers
            .set("Authorization", &format!("Bearer {token}"))
            .map_err(|_| "bad header")?;
        let init = web_sys::RequestInit::new();
        init.set_headers(&headers);
        let url = format!("/files/{}", js_sys::encode_uri_component(name));
        let response =
            wasm_bindgen_futures::JsFuture::from(window.fetch_with_str_and_init(&url, &init))
                .await
                .map_err(|_| "the bridge did not answer")?;
        let response: web_sys::Response = response.dyn_into().map_err(|_| "no response")?;
        if !response.ok() {
            return Err(format!("the bridge answered {}", response.status()));
        }
        let blob = wasm_bindgen_futures::JsFuture::from(response.blob().map_err(|_| "no body")?)
            .await
            .map_err(|_| "the download broke off")?;
        let blob: web_sys::Blob = blob.dyn_into().map_err(|_| "no body")?;
        let href = web_sys::Url::create_object_url_with_blob(&blob).map_err(|_| "no object URL")?;
        let document = window.document().ok_or("no document")?;
        let anchor: web_sys::HtmlAnchorElement = document
            .create_element("a")
            .map_err(|_| "no anchor")?
            .dyn_into()
            .map_err(|_| "no anchor")?;
        anchor.set_href(&href);
        anchor.set_download(name);
        anchor.click();
        let _ = web_sys::Url::revoke_object_url(&href);
        Ok(())
    }
}
